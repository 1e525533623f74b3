use std::collections::BTreeMap;
use std::io::Cursor;

use proptest::prelude::*;

use super::page::{META_BYTES, PAGE_HEADER_BYTES};
use super::*;

type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn write(buckets: &Buckets) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new()), PAGE_SIZE_DEFAULT).unwrap();
    for (name, pairs) in buckets {
        w.bucket(name).unwrap();
        for (k, v) in pairs {
            w.put(k, v).unwrap();
        }
    }
    let (out, summary) = w.finish().unwrap();
    let bytes = out.into_inner();
    assert_eq!(bytes.len() as u64, summary.bytes);
    assert_eq!(summary.bytes, summary.pages * PAGE_SIZE_DEFAULT as u64);
    bytes
}

fn read(bytes: Vec<u8>) -> Buckets {
    let r = Reader::open(bytes).unwrap();
    r.check().unwrap();
    let mut out = Buckets::new();
    for (name, root) in r.buckets().unwrap() {
        let mut pairs = BTreeMap::new();
        r.for_each(&root, |k, v| {
            pairs.insert(k.to_vec(), v.to_vec());
            Ok::<(), BboltError>(())
        })
        .unwrap();
        out.insert(name, pairs);
    }
    out
}

/// Revision-like keys (17 bytes, as etcd's `key` bucket) with values of `value_bytes`.
fn bucket_of(n: u64, value_bytes: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut k = i.to_be_bytes().to_vec();
            k.push(b'_');
            k.extend_from_slice(&0u64.to_be_bytes());
            (k, vec![(i % 251) as u8; value_bytes])
        })
        .collect()
}

fn sample() -> Buckets {
    let mut b = Buckets::new();
    b.insert(b"empty".to_vec(), BTreeMap::new());
    b.insert(b"key".to_vec(), bucket_of(50_000, 40));
    b.insert(
        b"large".to_vec(),
        [
            (b"a".to_vec(), vec![1u8; 3 * PAGE_SIZE_DEFAULT + 17]),
            (b"b".to_vec(), vec![2u8; 10]),
            (b"c".to_vec(), vec![3u8; 1_500_000]),
            (b"d".to_vec(), vec![4u8; 5000]),
        ]
        .into_iter()
        .collect(),
    );
    b.insert(
        b"small".to_vec(),
        [(b"x".to_vec(), b"1".to_vec())].into_iter().collect(),
    );
    b
}

#[test]
fn many_keys_large_values_and_empty_buckets_round_trip() {
    let input = sample();
    let bytes = write(&input);
    assert_eq!(read(bytes), input);
}

#[test]
fn pages_are_filled_like_bbolt_so_files_stay_small() {
    let mut input = Buckets::new();
    input.insert(b"key".to_vec(), bucket_of(50_000, 40));
    let bytes = write(&input);
    // 50,000 × (16-byte element + 17-byte key + 40-byte value) = 3.65 MB of payload.
    let payload = 50_000 * (16 + 17 + 40);
    assert!(
        bytes.len() < payload * 105 / 100,
        "{} bytes for {payload} of payload",
        bytes.len()
    );
}

#[test]
fn a_multi_level_tree_has_branch_pages() {
    let mut input = Buckets::new();
    input.insert(b"key".to_vec(), bucket_of(200_000, 8));
    let r = Reader::open(write(&input)).unwrap();
    let BucketRoot::Page(root) = r.bucket(b"key").unwrap() else {
        panic!("a big bucket is not inline");
    };
    let (hdr, _) = r.page(root).unwrap();
    assert_eq!(hdr.flags, page::FLAG_BRANCH);
    r.check().unwrap();
}

#[test]
fn small_buckets_are_inline_and_a_quarter_page_is_the_limit() {
    let mut input = Buckets::new();
    // 16 (page header) + 16 (element) + 1 (key) + 991 = 1024 bytes: inline.
    input.insert(
        b"at_limit".to_vec(),
        [(b"k".to_vec(), vec![0u8; 991])].into_iter().collect(),
    );
    input.insert(b"empty".to_vec(), BTreeMap::new());
    input.insert(
        b"over".to_vec(),
        [(b"k".to_vec(), vec![0u8; 992])].into_iter().collect(),
    );
    let bytes = write(&input);
    let r = Reader::open(bytes.clone()).unwrap();
    assert!(matches!(
        r.bucket(b"at_limit").unwrap(),
        BucketRoot::Inline { .. }
    ));
    assert!(matches!(r.bucket(b"empty").unwrap(), BucketRoot::Inline { .. }));
    assert!(matches!(r.bucket(b"over").unwrap(), BucketRoot::Page(_)));
    assert_eq!(read(bytes), input);
}

#[test]
fn an_empty_file_has_etcd_sized_layout() {
    // Meta 0, meta 1, the root bucket's empty leaf and the freelist: bbolt's 4 pages.
    let bytes = write(&Buckets::new());
    assert_eq!(bytes.len(), 4 * PAGE_SIZE_DEFAULT);
    assert!(read(bytes).is_empty());
}

#[test]
fn meta_pages_follow_bbolt_write_to() {
    let bytes = write(&sample());
    let m0 = page::Meta::decode(&bytes[PAGE_HEADER_BYTES..]).unwrap();
    let m1 = page::Meta::decode(&bytes[PAGE_SIZE_DEFAULT + PAGE_HEADER_BYTES..]).unwrap();
    assert_eq!(
        m0.txid,
        m1.txid + 1,
        "bbolt Tx.WriteTo gives meta 1 the previous txid"
    );
    assert_eq!(m0.pgid * PAGE_SIZE_DEFAULT as u64, bytes.len() as u64);
    assert_eq!((m0.root, m0.freelist, m0.pgid), (m1.root, m1.freelist, m1.pgid));
}

#[test]
fn the_writer_refuses_unordered_empty_or_misplaced_input() {
    let new = || Writer::new(Cursor::new(Vec::new()), PAGE_SIZE_DEFAULT).unwrap();
    let mut w = new();
    assert!(
        matches!(w.put(b"k", b"v"), Err(BboltError::BadInput(_))),
        "put outside a bucket"
    );
    w.bucket(b"b").unwrap();
    w.put(b"k2", b"v").unwrap();
    assert!(matches!(w.put(b"k1", b"v"), Err(BboltError::BadInput(_))));
    assert!(
        matches!(w.put(b"k2", b"v"), Err(BboltError::BadInput(_))),
        "duplicate key"
    );
    assert!(matches!(w.put(b"", b"v"), Err(BboltError::BadInput(_))));
    assert!(matches!(w.bucket(b"a"), Err(BboltError::BadInput(_))));
    assert!(matches!(w.bucket(b"b"), Err(BboltError::BadInput(_))));
    assert!(matches!(
        w.put(&vec![1u8; KEY_BYTES_MAX + 1], b""),
        Err(BboltError::BadInput(_))
    ));
    assert!(matches!(
        Writer::new(Cursor::new(Vec::new()), 1000),
        Err(BboltError::BadInput(_))
    ));
}

/// Rewrites meta `n` of `bytes` (checksum included) after `edit`.
fn edit_meta(bytes: &mut [u8], n: usize, edit: impl FnOnce(&mut page::Meta)) {
    let at = n * PAGE_SIZE_DEFAULT + PAGE_HEADER_BYTES;
    let mut m = page::Meta::decode(&bytes[at..]).unwrap();
    edit(&mut m);
    m.encode(&mut bytes[at..at + META_BYTES]);
}

#[test]
fn a_broken_meta_checksum_falls_back_to_the_other_meta_and_two_are_fatal() {
    let good = write(&sample());
    let mut one = good.clone();
    one[PAGE_HEADER_BYTES + 20] ^= 0xff;
    assert_eq!(
        read(one.clone()),
        sample(),
        "meta 1 still describes the same tree"
    );
    one[PAGE_SIZE_DEFAULT + PAGE_HEADER_BYTES + 20] ^= 0xff;
    assert!(matches!(Reader::open(one), Err(BboltError::InvalidMeta(_))));
    let mut magic = good;
    for n in [0, 1] {
        magic[n * PAGE_SIZE_DEFAULT + PAGE_HEADER_BYTES] ^= 1;
    }
    assert!(matches!(Reader::open(magic), Err(BboltError::InvalidMeta(_))));
    assert!(matches!(
        Reader::open(vec![0u8; 10]),
        Err(BboltError::InvalidMeta(_))
    ));
}

#[test]
fn a_truncated_file_is_refused() {
    let mut bytes = write(&sample());
    bytes.truncate(bytes.len() - PAGE_SIZE_DEFAULT);
    assert!(matches!(Reader::open(bytes), Err(BboltError::Truncated { .. })));
}

/// Page id of the first leaf page of bucket `key` (its leftmost leaf).
fn first_leaf(bytes: &[u8]) -> u64 {
    let r = Reader::open(bytes.to_vec()).unwrap();
    let BucketRoot::Page(mut id) = r.bucket(b"key").unwrap() else {
        panic!("inline");
    };
    loop {
        let (hdr, buf) = r.page(id).unwrap();
        if hdr.flags == page::FLAG_LEAF {
            return id;
        }
        id = page::u64_at(&buf, PAGE_HEADER_BYTES + 8).unwrap();
    }
}

fn walk_all(bytes: Vec<u8>) -> Result<(), BboltError> {
    let r = Reader::open(bytes)?;
    for (_, root) in r.buckets()? {
        r.for_each(&root, |_, _| Ok::<(), BboltError>(()))?;
    }
    Ok(())
}

#[test]
fn corrupt_pages_are_errors_not_panics() {
    let good = write(&sample());
    let leaf = first_leaf(&good) as usize * PAGE_SIZE_DEFAULT;

    let mut wrong_id = good.clone();
    wrong_id[leaf] ^= 0x40;
    assert!(matches!(walk_all(wrong_id), Err(BboltError::Corrupt { .. })));

    let mut wrong_type = good.clone();
    wrong_type[leaf + 8] = 0x20;
    assert!(matches!(walk_all(wrong_type), Err(BboltError::Corrupt { .. })));

    // First element's key position pointing far outside the page.
    let mut bad_pos = good.clone();
    bad_pos[leaf + PAGE_HEADER_BYTES + 4..leaf + PAGE_HEADER_BYTES + 8]
        .copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    assert!(matches!(walk_all(bad_pos), Err(BboltError::Corrupt { .. })));

    // Swap the first two keys' bytes: keys out of order.
    let mut unordered = good.clone();
    let key_at = |b: &[u8], i: usize| {
        let e = leaf + PAGE_HEADER_BYTES + i * 16;
        e + page::u32_at(b, e + 4).unwrap() as usize
    };
    let (k0, k1) = (key_at(&good, 0), key_at(&good, 1));
    let (a, b) = (good[k0..k0 + 17].to_vec(), good[k1..k1 + 17].to_vec());
    unordered[k0..k0 + 17].copy_from_slice(&b);
    unordered[k1..k1 + 17].copy_from_slice(&a);
    assert!(matches!(walk_all(unordered), Err(BboltError::Corrupt { .. })));

    // A huge overflow count.
    let mut overflow = good.clone();
    overflow[leaf + 12..leaf + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(walk_all(overflow), Err(BboltError::Corrupt { .. })));

    // Garbage everywhere after the metas: errors only.
    let mut garbage = good;
    for (i, b) in garbage.iter_mut().enumerate().skip(2 * PAGE_SIZE_DEFAULT) {
        *b = (i * 7919 % 256) as u8;
    }
    assert!(walk_all(garbage).is_err());
}

#[test]
fn check_finds_unreachable_and_doubly_referenced_pages() {
    let good = write(&sample());
    let mut extra = good.clone();
    extra.extend_from_slice(&vec![0u8; PAGE_SIZE_DEFAULT]);
    for n in [0, 1] {
        edit_meta(&mut extra, n, |m| m.pgid += 1);
    }
    let r = Reader::open(extra).unwrap();
    assert!(matches!(r.check(), Err(BboltError::Corrupt { what, .. }) if what == "unreachable unfreed"));

    // Point the root bucket at the freelist page: referenced twice.
    let mut twice = good;
    for n in [0, 1] {
        edit_meta(&mut twice, n, |m| m.root = m.freelist);
    }
    assert!(Reader::open(twice).unwrap().check().is_err());
}

#[test]
fn a_real_etcd_snapshot_is_read() {
    // Saved with `etcdctl snapshot save` from etcd 3.4.23 after: put a 1, put b 2, put a 3,
    // del b, lease grant 100, put c 4 --lease, compaction 3 (tests/fixtures).
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/etcd-3.4.23-snapshot.db"
    ))
    .unwrap();
    let r = Reader::open(file).unwrap();
    r.check().unwrap();
    assert_eq!(r.file_bytes(), r.size() + 32, "etcdctl appends a SHA-256");
    let names: Vec<String> = r
        .buckets()
        .unwrap()
        .into_iter()
        .map(|(n, _)| String::from_utf8(n).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta"
        ]
    );
    let mut revs = Vec::new();
    r.for_each(&r.bucket(b"key").unwrap(), |k, _| {
        revs.push(u64::from_be_bytes(k[..8].try_into().unwrap()));
        Ok::<(), BboltError>(())
    })
    .unwrap();
    assert_eq!(revs, [2, 3, 4, 5, 6]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn arbitrary_buckets_round_trip(
        input in proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 1..12),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 1..40),
                proptest::collection::vec(any::<u8>(), 0..3000),
                0..200,
            ),
            0..6,
        )
    ) {
        let bytes = write(&input);
        prop_assert_eq!(read(bytes), input);
    }
}
