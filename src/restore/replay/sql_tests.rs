use super::*;

fn col(name: &str, ty: &str, has_eq: bool) -> Col {
    Col {
        name: name.into(),
        ty: ty.into(),
        has_eq,
        identity_always: false,
    }
}

fn table(full: bool, partitioned: bool) -> Table {
    Table {
        oid: 1,
        ident: "\"public\".\"t\"".into(),
        display: "public.t".into(),
        partitioned,
        columns: vec![
            col("id", "bigint", true),
            col("doc", "json", false),
            col("Note", "character varying(10)", true),
        ],
        key: vec![0],
        full,
    }
}

#[test]
fn insert_casts_text_parameters_and_overrides_identity() {
    assert_eq!(
        insert(&table(false, false)),
        "INSERT INTO \"public\".\"t\" (\"id\", \"doc\", \"Note\") OVERRIDING SYSTEM VALUE \
         VALUES ($1::text::bigint, $2::text::json, $3::text::character varying(10))"
    );
    assert_eq!(
        copy_in(&table(false, false)),
        "COPY \"public\".\"t\" (\"id\", \"doc\", \"Note\") FROM STDIN"
    );
}

#[test]
fn update_by_key_sets_only_the_sent_columns() {
    let t = table(false, false);
    // The TOASTed json column (1) was not sent: it is not in SET.
    assert_eq!(
        update(&t, &[0, 2], &Locate::Key(vec![0])),
        "UPDATE \"public\".\"t\" SET \"id\" = $1::text::bigint, \"Note\" = \
         $2::text::character varying(10) WHERE \"id\" = $3::text::bigint"
    );
    assert_eq!(
        delete(&t, &Locate::Key(vec![0])),
        "DELETE FROM \"public\".\"t\" WHERE \"id\" = $1::text::bigint"
    );
}

#[test]
fn full_identity_compares_every_column_and_picks_one_row_by_ctid() {
    let t = table(true, false);
    assert_eq!(
        delete(&t, &Locate::Full(vec![0, 1, 2])),
        "DELETE FROM \"public\".\"t\" WHERE ctid = (SELECT ctid FROM \"public\".\"t\" WHERE \
         \"id\" IS NOT DISTINCT FROM $1::text::bigint AND \"doc\"::text IS NOT DISTINCT FROM \
         $2::text AND \"Note\" IS NOT DISTINCT FROM $3::text::character varying(10) LIMIT 1)"
    );
    let p = table(true, true);
    assert!(update(&p, &[2], &Locate::Full(vec![0]))
        .ends_with("WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM \"public\".\"t\" WHERE \"id\" IS NOT DISTINCT FROM $2::text::bigint LIMIT 1)"));
}

#[test]
fn an_update_of_unchanged_toast_only_still_locates_the_row() {
    let t = table(false, false);
    assert_eq!(
        update(&t, &[], &Locate::Key(vec![0])),
        "UPDATE \"public\".\"t\" SET \"id\" = \"id\" WHERE \"id\" = $1::text::bigint"
    );
}

#[test]
fn truncate_binds_only_to_each_table_and_keeps_the_option_bits() {
    let a = table(false, false);
    let mut b = table(false, true);
    b.ident = "\"s\".\"p\"".into();
    assert_eq!(
        truncate(&[&a, &b], true, true),
        "TRUNCATE ONLY \"public\".\"t\", \"s\".\"p\" RESTART IDENTITY CASCADE"
    );
    assert_eq!(
        truncate(&[&a], false, false),
        "TRUNCATE ONLY \"public\".\"t\""
    );
}

#[test]
fn copy_values_escape_what_copy_reads_specially() {
    let mut out = Vec::new();
    copy_value(&mut out, Some(b"a\\b\tc\nd\re"));
    out.push(b'\t');
    copy_value(&mut out, None);
    assert_eq!(out, b"a\\\\b\\tc\\nd\\re\t\\N");
}

#[test]
fn keys_are_described_as_postgresql_does_and_cut() {
    let t = table(false, false);
    let long = vec![b'x'; 100];
    assert_eq!(
        describe_key(&t, &[0, 1], &[Some(b"42"), None]),
        "(id, doc)=(42, NULL)"
    );
    let d = describe_key(&t, &[2], &[Some(&long)]);
    assert_eq!(d.len(), "(Note)=()".len() + 64 + 3, "{d}");
}
