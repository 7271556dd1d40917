//! The behavioural suite against the in-memory reference backend.

authflow_store::store_suite!(async { authflow_store::MemoryStore::new() });

#[test]
fn open_memory() {
    let store = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async { authflow_store::open("memory:", &Default::default()).await.expect("open memory:") });
    assert_eq!(store.backend(), "memory");
}
