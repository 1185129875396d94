use super::*;

fn author() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn platform() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn statement() -> CapsuleStatement {
    CapsuleStatement::new("csv-summary", "1.0.0", &"a".repeat(64), &"b".repeat(64))
}

fn keys(signers: &[&SigningKey]) -> BTreeMap<String, VerifyingKey> {
    signers
        .iter()
        .map(|k| (key_id(&k.verifying_key()), k.verifying_key()))
        .collect()
}

#[test]
fn pae_matches_the_dsse_spec_example() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

#[test]
fn the_statement_is_canonical_json() {
    let json = String::from_utf8(statement().canonical_json()).unwrap();
    assert_eq!(
        json,
        format!(
            "{{\"bundle_sha256\":\"{}\",\"manifest_sha256\":\"{}\",\"name\":\"csv-summary\",\"version\":\"1.0.0\"}}",
            "b".repeat(64),
            "a".repeat(64)
        )
    );
}

#[test]
fn a_signed_envelope_verifies_and_round_trips_through_json() {
    let envelope = sign(&statement(), &author());
    let back = Envelope::from_json(&envelope.to_json()).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(back.statement().unwrap(), statement());
    let verified = verify(&back, &statement(), &keys(&[&author()])).unwrap();
    assert_eq!(verified, [key_id(&author().verifying_key())]);
}

#[test]
fn the_platform_countersigns_and_both_verify() {
    let mut envelope = sign(&statement(), &author());
    add_signature(&mut envelope, &platform()).unwrap();
    add_signature(&mut envelope, &platform()).unwrap();
    assert_eq!(envelope.signatures.len(), 2);
    let verified = verify(&envelope, &statement(), &keys(&[&author(), &platform()])).unwrap();
    assert_eq!(verified.len(), 2);
    // With only the platform's key, the author's signature is ignored.
    let verified = verify(&envelope, &statement(), &keys(&[&platform()])).unwrap();
    assert_eq!(verified, [key_id(&platform().verifying_key())]);
}

#[test]
fn each_failure_has_its_error() {
    let good = sign(&statement(), &author());
    let known = keys(&[&author()]);

    let mut other = statement();
    other.bundle_sha256 = "c".repeat(64);
    assert_eq!(
        verify(&good, &other, &known),
        Err(SignatureError::DigestMismatch {
            field: "bundle_sha256"
        })
    );
    other = statement();
    other.version = "1.0.1".into();
    assert_eq!(
        verify(&good, &other, &known),
        Err(SignatureError::StatementMismatch { field: "version" })
    );

    assert!(matches!(
        verify(&good, &statement(), &keys(&[&platform()])),
        Err(SignatureError::UnknownKey { .. })
    ));

    let mut tampered = good.clone();
    let forged = sign(&other, &platform());
    tampered.signatures[0].sig = forged.signatures[0].sig.clone();
    assert!(matches!(
        verify(&tampered, &statement(), &known),
        Err(SignatureError::BadSignature { .. })
    ));

    let mut short = good.clone();
    short.signatures[0].sig = STANDARD.encode([1u8; 10]);
    assert!(matches!(
        verify(&short, &statement(), &known),
        Err(SignatureError::BadSignature { .. })
    ));

    let mut bad_b64 = good.clone();
    bad_b64.payload = "%%%".into();
    assert_eq!(
        verify(&bad_b64, &statement(), &known),
        Err(SignatureError::BadBase64 { field: "payload" })
    );

    let mut wrong_type = good.clone();
    wrong_type.payload_type = "application/vnd.in-toto+json".into();
    assert!(matches!(
        verify(&wrong_type, &statement(), &known),
        Err(SignatureError::WrongPayloadType { .. })
    ));

    let mut not_statement = good.clone();
    not_statement.payload = STANDARD.encode(b"{\"name\":1}");
    assert!(matches!(
        verify(&not_statement, &statement(), &known),
        Err(SignatureError::InvalidStatement { .. })
    ));

    let mut none = good.clone();
    none.signatures.clear();
    assert_eq!(
        verify(&none, &statement(), &known),
        Err(SignatureError::NoSignatures)
    );
}

#[test]
fn malformed_envelopes_are_typed_errors() {
    assert!(matches!(
        Envelope::from_json(b"{\"payload\": 3}"),
        Err(SignatureError::InvalidEnvelope { .. })
    ));
    assert!(matches!(
        Envelope::from_json(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
        Err(SignatureError::EnvelopeTooLarge { .. })
    ));
    let mut many = sign(&statement(), &author());
    many.signatures = vec![many.signatures[0].clone(); MAX_SIGNATURES + 1];
    assert_eq!(
        verify(&many, &statement(), &keys(&[&author()])),
        Err(SignatureError::TooManySignatures)
    );
}
