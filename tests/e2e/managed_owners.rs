//! Owners on a managed-like target (issue 15): objects whose backup owner the admin can act
//! as keep that owner; only the superuser's become the admin's. Assertions are the test's own
//! catalog queries.

use crate::managed::{admin_server, copy_rows, restore_as_admin_into, world_from};

/// A superuser-owned table next to an application role's schema, table (with its identity
/// sequence), view, function and enum, granted to a reader.
const MIXED_OWNERS_SOURCE: &str = r#"
CREATE ROLE app_reader NOLOGIN;
CREATE TABLE public.settings (k text PRIMARY KEY, v text);
INSERT INTO public.settings VALUES ('mode', 'live');
GRANT SELECT ON public.settings TO app_reader;
GRANT CREATE ON DATABASE app TO app_owner;
GRANT CREATE ON SCHEMA public TO app_owner;
SET ROLE app_owner;
CREATE SCHEMA shop;
CREATE TYPE shop.state AS ENUM ('open', 'done');
CREATE TABLE public.todos (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL, state shop.state NOT NULL DEFAULT 'open');
CREATE VIEW public.open_todos AS SELECT id, title FROM public.todos WHERE state = 'open';
CREATE FUNCTION public.todo_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = '' AS $$ SELECT count(*) FROM public.todos $$;
GRANT USAGE ON SCHEMA shop TO app_reader;
GRANT SELECT ON public.todos, public.open_todos TO app_reader;
INSERT INTO public.todos (title, state) VALUES ('a', 'open'), ('b', 'done');
RESET ROLE;
REVOKE CREATE ON DATABASE app FROM app_owner;
REVOKE CREATE ON SCHEMA public FROM app_owner;
"#;

/// Owners of every relation, function, type and schema of the application, by name.
const OWNERS: &str = "
SELECT 'rel ' || n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('public', 'shop') AND c.relkind IN ('r', 'v', 'S')
UNION ALL
SELECT 'fn ' || p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p
 WHERE p.pronamespace IN ('public'::regnamespace, 'shop'::regnamespace)
UNION ALL
SELECT 'type ' || t.typname, pg_get_userbyid(t.typowner) FROM pg_type t
 WHERE t.typnamespace = 'shop'::regnamespace AND t.typtype = 'e'
UNION ALL
SELECT 'schema ' || nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'shop'
ORDER BY 1";

#[test]
fn reachable_owners_keep_their_objects_and_only_the_superusers_go_to_the_admin() {
    let w = world_from(MIXED_OWNERS_SOURCE);
    let t = admin_server("GRANT SET ON PARAMETER session_replication_role TO admin;");
    let source = w.pg.psql("app", OWNERS);
    assert_eq!(
        source,
        "fn todo_count|app_owner\nrel public.open_todos|app_owner\nrel public.settings|postgres\n\
         rel public.todos|app_owner\nrel public.todos_id_seq|app_owner\nschema shop|app_owner\n\
         type state|app_owner"
    );
    let r = restore_as_admin_into(&w, &t, "app", &["--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "owners: objects of postgres (superuser roles admin cannot act as) are owned by admin"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("owner app_owner: 5 object(s) given back to it after the --no-owner restore"),
        "{}",
        r.stdout
    );
    assert_eq!(t.psql("app", OWNERS), source.replace("|postgres", "|admin"));
    assert_eq!(copy_rows(&w.pg, "app"), copy_rows(&t, "app"));
    // The grants were made by the owner, as on the source; the temporary CREATE taken back.
    let grants = "SELECT c.relname, c.relacl::text FROM pg_class c
                   WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v') ORDER BY 1";
    assert_eq!(
        t.psql("app", grants),
        w.pg.psql("app", grants).replace("postgres", "admin")
    );
    assert_eq!(
        t.psql(
            "app",
            "SELECT has_database_privilege('app_owner', 'app', 'CREATE'),
                    has_schema_privilege('app_owner', 'public', 'CREATE')"
        ),
        "f|f"
    );
    // SECURITY DEFINER runs as the application's role again, not as the admin.
    assert_eq!(
        t.psql(
            "app",
            "SELECT pg_get_userbyid(proowner), prosecdef FROM pg_proc WHERE proname = 'todo_count'"
        ),
        "app_owner|t"
    );
}
