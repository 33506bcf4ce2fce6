//! Column names from pg_dump's COPY statement.

/// Extracts the column names from pg_dump's `COPY name [(col, ...)] FROM stdin;` statement.
/// Identifiers are as produced by fmtId: bare, or double-quoted with `""` for a quote.
pub(super) fn parse_copy_columns(stmt: &str) -> Option<Vec<String>> {
    let s = stmt.as_bytes();
    let mut i = "COPY ".len();
    if !stmt.starts_with("COPY ") {
        return None;
    }
    // Qualified table name.
    loop {
        parse_ident(s, &mut i)?;
        if s.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut columns = Vec::new();
    if s.get(i) == Some(&b'(') {
        i += 1;
        loop {
            while s.get(i) == Some(&b' ') {
                i += 1;
            }
            columns.push(parse_ident(s, &mut i)?);
            match s.get(i)? {
                b',' => i += 1,
                b')' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        while s.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    stmt[i..].starts_with("FROM stdin;").then_some(columns)
}

fn parse_ident(s: &[u8], i: &mut usize) -> Option<String> {
    if s.get(*i) == Some(&b'"') {
        let mut out = Vec::new();
        *i += 1;
        loop {
            match s.get(*i)? {
                b'"' if s.get(*i + 1) == Some(&b'"') => {
                    out.push(b'"');
                    *i += 2;
                }
                b'"' => {
                    *i += 1;
                    return String::from_utf8(out).ok();
                }
                b => {
                    out.push(*b);
                    *i += 1;
                }
            }
        }
    } else {
        let start = *i;
        while let Some(b) = s.get(*i) {
            if matches!(
                b,
                b' ' | b'.' | b',' | b'(' | b')' | b';' | b'\n' | b'\t' | b'"'
            ) {
                break;
            }
            *i += 1;
        }
        (*i > start).then(|| String::from_utf8_lossy(&s[start..*i]).into_owned())
    }
}
