use super::*;
use crate::capture::fixtures::recorded;

fn all(name: &str) -> Vec<Message> {
    recorded(name)
        .iter()
        .map(|r| decode(&r.data).unwrap_or_else(|e| panic!("{} at {}: {e}", name, r.lsn)))
        .collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.as_bytes().to_vec())
}

#[test]
fn every_recorded_message_decodes_and_transactions_are_whole() {
    for name in ["pg15-workload", "pg15-workload-binary"] {
        let rec = recorded(name);
        let msgs = all(name);
        let mut open: Option<(Lsn, u32)> = None;
        let mut commits = 0;
        for (r, m) in rec.iter().zip(&msgs) {
            match m {
                Message::Begin { final_lsn, xid, .. } => {
                    assert!(open.is_none(), "{name}: nested Begin");
                    assert_eq!(*xid, r.xid, "Begin's xid is the top-level xid");
                    open = Some((*final_lsn, *xid));
                }
                Message::Commit {
                    commit_lsn,
                    end_lsn,
                    flags,
                    ..
                } => {
                    let (final_lsn, _) = open.take().expect("Commit inside a transaction");
                    assert_eq!(*commit_lsn, final_lsn, "Begin's final LSN is Commit's LSN");
                    assert_eq!(*end_lsn, r.lsn, "the SQL interface shows Commit at end LSN");
                    assert_eq!(*flags, 0);
                    commits += 1;
                }
                Message::LogicalMessage { transactional, .. } => {
                    assert_eq!(*transactional, open.is_some(), "{name}: {m:?}")
                }
                _ => assert!(open.is_some(), "{name}: {m:?} outside a transaction"),
            }
        }
        assert!(open.is_none());
        assert_eq!(commits, 17, "{name}");
    }
}

#[test]
fn relation_type_and_rows_decode_to_what_the_workload_wrote() {
    let m = all("pg15-workload");
    let Message::Type {
        namespace, name, ..
    } = &m[1]
    else {
        panic!("{:?}", m[1])
    };
    assert_eq!((namespace.as_str(), name.as_str()), ("public", "mood"));
    let Message::Relation(parent) = &m[2] else {
        panic!("{:?}", m[2])
    };
    assert_eq!(parent.name, "parent");
    assert_eq!(parent.replica_identity, b'd');
    let cols: Vec<(&str, bool)> = parent
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.key))
        .collect();
    assert_eq!(cols, [("id", true), ("name", false), ("feel", false)]);
    assert_eq!(parent.columns[0].type_oid, 23);
    assert_eq!(parent.columns[0].type_modifier, -1);
    assert_eq!(
        m[3],
        Message::Insert {
            relid: parent.oid,
            new: vec![text("1"), text("one"), text("happy")]
        }
    );
    assert_eq!(
        m[4],
        Message::Insert {
            relid: parent.oid,
            new: vec![text("2"), Value::Null, text("sad")]
        }
    );
}

#[test]
fn updates_deletes_truncates_messages_and_origins_carry_their_details() {
    let m = all("pg15-workload");
    let find =
        |pred: &dyn Fn(&Message) -> bool| m.iter().filter(|x| pred(x)).cloned().collect::<Vec<_>>();
    // A primary-key change sends the old key; a FULL identity the old row.
    let keyed = find(&|x| {
        matches!(
            x,
            Message::Update {
                old: Some(OldTuple::Key(_)),
                ..
            }
        )
    });
    assert_eq!(keyed.len(), 1);
    let Message::Update {
        old: Some(OldTuple::Key(k)),
        new,
        ..
    } = &keyed[0]
    else {
        unreachable!()
    };
    assert_eq!(k, &vec![text("2"), Value::Null, Value::Null]);
    assert_eq!(new[0], text("3"));
    let full = find(&|x| {
        matches!(
            x,
            Message::Update {
                old: Some(OldTuple::Full(_)),
                ..
            }
        )
    });
    let Message::Update {
        old: Some(OldTuple::Full(o)),
        ..
    } = &full[0]
    else {
        unreachable!()
    };
    assert_eq!(o, &vec![text("3"), text("y")]);
    // The unchanged TOASTed value is not sent.
    let toast =
        find(&|x| matches!(x, Message::Update { new, .. } if new.contains(&Value::UnchangedToast)));
    assert_eq!(toast.len(), 1);
    // Deletes: key of a keyed table (cascade included), whole row of a FULL one.
    let deletes = find(&|x| matches!(x, Message::Delete { .. }));
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    assert!(deletes.iter().any(|d| matches!(d, Message::Delete { old: OldTuple::Full(r), .. } if r == &vec![text("1"), text("x")])));
    // TRUNCATE parent, child RESTART IDENTITY CASCADE; then a plain one.
    let t = find(&|x| matches!(x, Message::Truncate { .. }));
    assert!(matches!(&t[0], Message::Truncate { options: 3, relids } if relids.len() == 2));
    assert!(matches!(&t[1], Message::Truncate { options: 0, relids } if relids.len() == 1));
}

#[test]
fn logical_messages_origins_and_changed_relations_decode() {
    let m = all("pg15-workload");
    let find =
        |pred: &dyn Fn(&Message) -> bool| m.iter().filter(|x| pred(x)).cloned().collect::<Vec<_>>();
    // Logical messages: inside a transaction and outside.
    let msgs = find(&|x| matches!(x, Message::LogicalMessage { .. }));
    assert!(
        matches!(&msgs[0], Message::LogicalMessage { transactional: true, prefix, content, .. } if prefix == "pgdr.mark" && content == b"in-txn")
    );
    assert!(
        matches!(&msgs[1], Message::LogicalMessage { transactional: false, prefix, lsn, .. } if prefix == "pgdr.heartbeat" && *lsn == recorded("pg15-workload").iter().find(|r| r.xid == 0).unwrap().lsn)
    );
    // A replicated-from-origin transaction names its origin.
    let o = find(&|x| matches!(x, Message::Origin { .. }));
    assert_eq!(
        o,
        vec![Message::Origin {
            origin_lsn: Lsn(0xAB),
            name: "fx_origin".into()
        }]
    );
    // ADD COLUMN shows as a Relation with one more column.
    let nokey: Vec<usize> = m
        .iter()
        .filter_map(|x| match x {
            Message::Relation(r) if r.name == "nokey" => Some(r.columns.len()),
            _ => None,
        })
        .collect();
    assert_eq!(nokey.first(), Some(&2));
    assert_eq!(nokey.last(), Some(&3));
}

#[test]
fn binary_mode_values_are_binary() {
    let m = all("pg15-workload-binary");
    let Message::Insert { new, .. } = &m[3] else {
        panic!("{:?}", m[3])
    };
    assert_eq!(new[0], Value::Binary(1i32.to_be_bytes().to_vec()));
}

#[test]
fn begin_and_commit_times_are_postgres_epoch() {
    let m = all("pg15-workload");
    let Message::Begin { commit_time, .. } = &m[0] else {
        panic!()
    };
    assert!(commit_time.timestamp() > 1_700_000_000, "{commit_time}");
    assert_eq!(pg_time(0).to_rfc3339(), "2000-01-01T00:00:00+00:00");
}

#[test]
fn damaged_messages_are_typed_errors() {
    let rec = recorded("pg15-workload");
    // Every proper prefix of every message is truncated, never a panic or a wrong message.
    for r in &rec {
        for cut in 0..r.data.len() {
            let e = decode(&r.data[..cut]).unwrap_err();
            assert!(
                matches!(
                    e,
                    DecodeError::Truncated { .. }
                        | DecodeError::Empty
                        | DecodeError::BadKind { .. }
                ),
                "{:?} cut at {cut}: {e:?}",
                r.data
            );
        }
        let mut long = r.data.clone();
        long.push(0);
        assert!(
            matches!(decode(&long), Err(DecodeError::Trailing { extra: 1, .. })),
            "{:?}",
            long
        );
    }
    assert_eq!(decode(b"S\0\0\0\x01"), Err(DecodeError::UnknownTag(b'S')));
    let mut bad = rec[3].data.clone();
    bad[5] = b'X'; // 'N' of the new tuple
    assert!(matches!(
        decode(&bad),
        Err(DecodeError::BadKind {
            field: "tuple kind",
            ..
        })
    ));
    let mut neg = rec[3].data.clone();
    neg[9] = 0xFF; // first value's length
    assert!(matches!(decode(&neg), Err(DecodeError::Negative { .. })));
    assert!(DecodeError::UnknownTag(b'S').to_string().contains("'S'"));
}
