//! Data subjects' keys against the real stores, on both backends: a sealed value opens with its
//! subject's key only, bound to that subject; concurrent first seals agree on one key; erasure
//! makes every sealed value of the subject unreadable for good and refuses new ones, and the
//! sealed bytes themselves do not change.

use agora_commands::subjects::{subject_ref, Opened, SubjectError, SubjectKeys};
use agora_tests::{both_backends, TestStore};

async fn subject_keys_story(t: TestStore) {
    let keys = SubjectKeys::new(&t.store);
    let ann = subject_ref("acme", "ann");
    let bob = subject_ref("acme", "bob");
    assert_ne!(
        ann,
        subject_ref("acmea", "nn"),
        "tenant and id are unambiguous"
    );
    assert!(!ann.contains("ann"));

    // Sealed and opened; every seal its own nonce.
    let a1 = keys.seal(&ann, b"198.51.100.0/24").await.unwrap();
    let a2 = keys.seal(&ann, b"198.51.100.0/24").await.unwrap();
    assert_ne!(a1.nonce, a2.nonce);
    assert_ne!(a1.ciphertext, a2.ciphertext);
    assert!(!a1.ciphertext.contains(&hex::encode("198.51.100")));
    assert_eq!(
        keys.open(&a1).await.unwrap(),
        Opened::Plain(b"198.51.100.0/24".to_vec())
    );

    // Bound to its subject, and to its bytes.
    let mut moved = a1.clone();
    moved.subject = bob.clone();
    keys.seal(&bob, b"x").await.unwrap();
    assert!(matches!(
        keys.open(&moved).await,
        Err(SubjectError::Tampered(_))
    ));
    let mut flipped = a1.clone();
    let last = flipped.ciphertext.pop().unwrap();
    flipped.ciphertext.push(if last == '0' { '1' } else { '0' });
    assert!(matches!(
        keys.open(&flipped).await,
        Err(SubjectError::Tampered(_))
    ));

    // Concurrent first seals of a new subject agree on one key.
    let carol = subject_ref("acme", "carol");
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let keys = keys.clone();
        let carol = carol.clone();
        tasks.push(tokio::spawn(async move { keys.seal(&carol, &[i]).await }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let sealed = task.await.unwrap().unwrap();
        assert_eq!(
            keys.open(&sealed).await.unwrap(),
            Opened::Plain(vec![i as u8])
        );
    }

    // Erasure: gone for good, new seals refused, idempotent, others untouched.
    let at = keys.erase(&ann).await.unwrap();
    assert_eq!(keys.open(&a1).await.unwrap(), Opened::Erased);
    assert_eq!(keys.open(&a2).await.unwrap(), Opened::Erased);
    assert!(matches!(
        keys.seal(&ann, b"again").await,
        Err(SubjectError::Erased { .. })
    ));
    assert_eq!(keys.erase(&ann).await.unwrap(), at);
    let b = keys.seal(&bob, b"still here").await.unwrap();
    assert_eq!(
        keys.open(&b).await.unwrap(),
        Opened::Plain(b"still here".to_vec())
    );
    // A subject erased before any seal stays erased.
    let dan = subject_ref("acme", "dan");
    keys.erase(&dan).await.unwrap();
    assert!(matches!(
        keys.seal(&dan, b"x").await,
        Err(SubjectError::Erased { .. })
    ));
    // Limits.
    assert!(matches!(
        keys.seal(&bob, &vec![0u8; 64 * 1024 + 1]).await,
        Err(SubjectError::TooLarge)
    ));
}
both_backends!(subject_keys_seal_open_and_erase, subject_keys_story);
