use super::*;

fn e(id: i32, desc: &str, ns: &str, tag: &str, deps: &[i32]) -> TocItem {
    TocItem {
        dump_id: id,
        desc: desc.into(),
        tag: tag.into(),
        namespace: ns.into(),
        dependencies: deps.to_vec(),
    }
}

/// auth.users, public.orders (serial, FK to users, policy, ACL), public.notes (FK to orders).
fn toc() -> Vec<TocItem> {
    vec![
        e(1, "SCHEMA", "", "auth", &[]),
        e(2, "TABLE", "auth", "users", &[1]),
        e(3, "TABLE", "public", "orders", &[]),
        e(4, "SEQUENCE", "public", "orders_id_seq", &[]),
        e(5, "SEQUENCE OWNED BY", "public", "orders_id_seq", &[4, 3]),
        e(6, "TABLE", "public", "notes", &[]),
        e(7, "DEFAULT", "public", "orders id", &[3, 4]),
        e(8, "TABLE DATA", "auth", "users", &[2]),
        e(9, "TABLE DATA", "public", "orders", &[3]),
        e(10, "SEQUENCE SET", "public", "orders_id_seq", &[4]),
        e(11, "CONSTRAINT", "public", "orders orders_pkey", &[3]),
        e(
            12,
            "FK CONSTRAINT",
            "public",
            "orders orders_user_id_fkey",
            &[3, 2],
        ),
        e(
            13,
            "FK CONSTRAINT",
            "public",
            "notes notes_order_fkey",
            &[6, 3, 11],
        ),
        e(14, "POLICY", "public", "orders orders_owner", &[3]),
        e(15, "ROW SECURITY", "public", "orders", &[3]),
        e(16, "ACL", "public", "TABLE orders", &[3]),
        e(17, "ACL", "public", "SEQUENCE orders_id_seq", &[4]),
    ]
}

fn t(s: &str, n: &str) -> (String, String) {
    (s.into(), n.into())
}

#[test]
fn a_table_brings_its_sequence_policies_and_grants_in_archive_order() {
    let s = select(&toc(), &[t("public", "orders")], &[], false).unwrap();
    assert_eq!(s.keep, vec![3, 4, 5, 7, 9, 10, 11, 12, 14, 15, 16, 17]);
    assert_eq!(s.incoming, vec!["public.notes notes_order_fkey"]);
    assert_eq!(s.incoming_ids, vec![13]);
    assert!(s.skipped.is_empty());
}

#[test]
fn into_skips_a_foreign_key_to_a_table_not_restored() {
    let s = select(&toc(), &[t("public", "orders")], &[], true).unwrap();
    assert!(!s.keep.contains(&12));
    assert_eq!(
        s.skipped,
        vec!["FK CONSTRAINT public.orders orders_user_id_fkey: refers to auth.users, which is not restored"]
    );
    // Both ends restored: the foreign key is kept.
    let s = select(&toc(), &[t("public", "orders")], &["auth".into()], true).unwrap();
    assert!(s.keep.contains(&12) && s.keep.contains(&8));
}

#[test]
fn a_table_not_in_the_backup_is_named() {
    let e = select(&toc(), &[t("public", "nope")], &[], false).unwrap_err();
    assert_eq!(e.message, "table public.nope is not in the backup");
    let e = select(&toc(), &[], &["empty".into()], false).unwrap_err();
    assert!(e.message.starts_with("no table selected"), "{}", e.message);
}

#[test]
fn the_list_names_each_entry() {
    assert_eq!(
        list_text(&[3, 9]).lines().skip(1).collect::<Vec<_>>(),
        ["3;", "9;"]
    );
}

/// public.events partitioned into events_1 and events_2, events_2 itself partitioned
/// (events_2a); public.legacy inherits from events_1 without being a partition.
fn partitioned() -> Vec<TocItem> {
    vec![
        e(1, "TABLE", "public", "events", &[]),
        e(2, "TABLE", "public", "events_1", &[1]),
        e(3, "TABLE", "public", "events_2", &[1]),
        e(4, "TABLE", "public", "events_2a", &[3]),
        e(5, "TABLE", "public", "legacy", &[2]),
        e(6, "TABLE ATTACH", "public", "events_1", &[2, 1]),
        e(7, "TABLE ATTACH", "public", "events_2", &[3, 1]),
        e(8, "TABLE ATTACH", "public", "events_2a", &[4, 3]),
        e(9, "TABLE DATA", "public", "events_1", &[2]),
        e(10, "TABLE DATA", "public", "events_2a", &[4]),
        e(11, "TABLE DATA", "public", "legacy", &[5]),
        e(12, "CONSTRAINT", "public", "events events_pkey", &[1]),
        e(
            13,
            "CONSTRAINT",
            "public",
            "events_1 events_1_pkey",
            &[2, 12],
        ),
        e(
            14,
            "INDEX ATTACH",
            "public",
            "events_1_pkey",
            &[13, 12, 2, 1],
        ),
    ]
}

#[test]
fn a_partitioned_table_brings_its_partitions_at_every_level() {
    for into in [true, false] {
        let s = select(&partitioned(), &[t("public", "events")], &[], into).unwrap();
        assert_eq!(
            s.tables,
            vec![
                t("public", "events"),
                t("public", "events_1"),
                t("public", "events_2"),
                t("public", "events_2a")
            ]
        );
        assert_eq!(
            s.partitions,
            vec![
                t("public.events_1", "public.events"),
                t("public.events_2", "public.events"),
                t("public.events_2a", "public.events_2")
            ]
        );
        // Attachments, data and the partitions' constraints; not the inheritance child.
        assert_eq!(
            s.keep,
            vec![1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14],
            "into {into}"
        );
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    }
    // A partition alone stays alone (its attachment refers to a parent not restored).
    let s = select(&partitioned(), &[t("public", "events_1")], &[], true).unwrap();
    assert_eq!(s.tables, vec![t("public", "events_1")]);
    assert!(s.partitions.is_empty());
}
