//! Metadata read-modify-write: concurrent updates are never lost, an error
//! writes nothing.

use chunk_memo_core::store::Store;
use chunk_memo_core::CoreError;
use std::sync::Arc;

#[test]
fn concurrent_updates_are_all_kept() {
    let root = std::env::temp_dir().join(format!("chunk-memo-meta-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root).unwrap();
    let id = [5u8; 16];
    let threads: Vec<_> = (0..4u8)
        .map(|k| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25u8 {
                    store
                        .update_meta(&id, |old| {
                            let mut v = old.map(<[u8]>::to_vec).unwrap_or_default();
                            std::thread::yield_now();
                            v.push(k * 25 + i);
                            Ok(Some(v))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut got = store.get_meta(&id).unwrap().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<u8>>());
    // Unchanged and failed updates write nothing.
    assert!(!store.update_meta(&id, |_| Ok(None)).unwrap());
    assert!(store.update_meta(&id, |_| Err(CoreError::invalid("no"))).is_err());
    assert_eq!(store.get_meta(&id).unwrap().unwrap().len(), 100);
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
}
