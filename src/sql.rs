//! Quoting for the SQL pgdr writes itself (names and values from catalogs and manifests).

/// `my "table"` → `"my ""table"""`: always quoted, so case and odd characters survive.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `it's` → `'it''s'` (standard_conforming_strings, the default since 9.1).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            quote_ident("Weird \"Name\" tbl"),
            "\"Weird \"\"Name\"\" tbl\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
