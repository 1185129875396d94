//! Builds, then crashes on purpose (Agora analyser evaluation): `unwrap` on a parse error in
//! the main thread.

fn parse_port(value: &str) -> u16 {
    value.trim().parse().unwrap()
}

fn main() {
    let settings = [("host", "localhost"), ("port", "80a")];
    for (key, value) in settings {
        println!("{key} = {value}");
    }
    let port = parse_port(settings[1].1);
    println!("listening on {port}");
}
