//! Creating and dropping whole PostgreSQL databases: one fresh database per test or benchmark.

use sqlx::postgres::PgConnection;
use sqlx::Connection;

/// Creates database `name` through the server at `admin_url` and returns a URL for it.
/// `name` must be a plain identifier (letters, digits, underscore).
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    check_identifier(name)?;
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(database_url(admin_url, name))
}

/// Drops database `name`, ending its sessions first.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    check_identifier(name)?;
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `admin_url` with its database path replaced by `name` (query string kept).
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

fn check_identifier(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(ok, "{name:?} is not a plain database name");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_the_path() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u@h:5/db?sslmode=disable", "t2"),
            "postgres://u@h:5/t2?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "t3"), "postgres://h/t3");
        assert!(check_identifier("bad-name").is_err());
    }
}
