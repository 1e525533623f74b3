use std::time::Instant;
use crate::harness::Server;
use mainstay::proto::etcdserverpb::PutRequest;

#[tokio::test]
async fn probe_put_rate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    let t = Instant::now();
    for i in 0..500 {
        kv.put(PutRequest { key: format!("k{i}").into(), value: "v".into(), ..Default::default() }).await.unwrap();
    }
    eprintln!("500 sequential puts: {:?}", t.elapsed());
    let t = Instant::now();
    let mut hs = Vec::new();
    for w in 0..8 {
        let mut kv = kv.clone();
        hs.push(tokio::spawn(async move {
            for i in 0..125 {
                kv.put(PutRequest { key: format!("c{w}/{i}").into(), value: "v".into(), ..Default::default() }).await.unwrap();
            }
        }));
    }
    for h in hs { h.await.unwrap(); }
    eprintln!("1000 puts by 8 tasks: {:?}", t.elapsed());
    let t = Instant::now();
    let v = vec![b'x'; 100 * 1024];
    for i in 0..100 {
        kv.put(PutRequest { key: format!("b{i}").into(), value: v.clone().into(), ..Default::default() }).await.unwrap();
    }
    eprintln!("100 x 100KiB puts: {:?}", t.elapsed());
}
