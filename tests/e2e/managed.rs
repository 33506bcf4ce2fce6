//! Restore onto a managed-like server (issue 15): pgdr connects as an admin role with
//! CREATEDB, CREATEROLE and BYPASSRLS but not SUPERUSER, into a database whose `auth` schema
//! the platform made and owns. Every assertion is an independent catalog query or row digest
//! run on the source and the target, not pgdr's fingerprint.

use crate::common::*;

const ADMIN_PW: &str = "admin-pw-7";
const U1: &str = "11111111-1111-1111-1111-111111111111";
const U2: &str = "22222222-2222-2222-2222-222222222222";

/// A Supabase-style application: RLS policies using auth.uid(), SECURITY DEFINER functions,
/// a trigger on auth.users inserting profile rows, grants to `authenticated`.
const SOURCE: &str = r#"
CREATE ROLE app_reader NOLOGIN;
CREATE ROLE app_worker LOGIN BYPASSRLS CONNECTION LIMIT 5;
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text NOT NULL);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO authenticated, app_owner;
GRANT CREATE ON SCHEMA public TO app_owner;
SET ROLE app_owner;
CREATE TABLE public.profiles (id uuid PRIMARY KEY, email text);
CREATE TABLE public.todos (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id uuid NOT NULL, title text NOT NULL, done boolean NOT NULL DEFAULT false);
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;
CREATE POLICY todos_own ON public.todos FOR ALL TO authenticated
  USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
CREATE POLICY profiles_own ON public.profiles FOR SELECT TO authenticated USING (id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON public.todos, public.profiles TO authenticated;
GRANT SELECT ON public.todos TO app_reader;
CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = '' AS $$
BEGIN INSERT INTO public.profiles (id, email) VALUES (new.id, new.email); RETURN new; END $$;
CREATE FUNCTION public.todo_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = '' AS $$ SELECT count(*) FROM public.todos WHERE user_id = auth.uid() $$;
REVOKE EXECUTE ON FUNCTION public.todo_count() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.todo_count() TO authenticated;
RESET ROLE;
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
  FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();
INSERT INTO auth.users VALUES ('11111111-1111-1111-1111-111111111111', 'a@example.com'),
                              ('22222222-2222-2222-2222-222222222222', 'b@example.com');
INSERT INTO public.todos (user_id, title) VALUES
  ('11111111-1111-1111-1111-111111111111', 'a1'), ('11111111-1111-1111-1111-111111111111', 'a2'),
  ('22222222-2222-2222-2222-222222222222', 'b1');
"#;

/// The managed-like server: the admin role, the application's roles the platform provides,
/// and database `app` whose `auth` schema a platform role owns, with a column the backup lacks
/// and a platform trigger of its own on auth.users.
fn managed_target() -> Pg {
    managed_target_with("GRANT SET ON PARAMETER session_replication_role TO admin;")
}

/// The managed-like server with `admin_sql` run last in `postgres` (what the admin may do).
pub(crate) fn managed_target_with(admin_sql: &str) -> Pg {
    let t = admin_server(admin_sql);
    t.psql("postgres", "CREATE DATABASE app OWNER admin");
    t.psql(
        "app",
        "CREATE SCHEMA auth AUTHORIZATION platform_auth;
         SET ROLE platform_auth;
         CREATE TABLE auth.users (id uuid PRIMARY KEY, email text NOT NULL,
                                  aud text NOT NULL DEFAULT 'authenticated');
         CREATE TABLE auth.audit_log (id bigserial PRIMARY KEY, user_id uuid);
         CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
           AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
         CREATE FUNCTION auth.audit() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO auth.audit_log (user_id) VALUES (new.id); RETURN new; END $$;
         CREATE TRIGGER users_audit AFTER INSERT ON auth.users
           FOR EACH ROW EXECUTE FUNCTION auth.audit();
         GRANT USAGE ON SCHEMA auth TO admin, authenticated, app_owner;
         GRANT SELECT, INSERT, TRIGGER, REFERENCES ON auth.users TO admin;
         RESET ROLE;",
    );
    t
}

/// The managed-like server without any database of the application: the admin role (no
/// SUPERUSER; CREATEDB, CREATEROLE, BYPASSRLS) and the roles the platform provides, with
/// `admin_sql` run last in `postgres`.
pub(crate) fn admin_server(admin_sql: &str) -> Pg {
    let t = Pg::start();
    t.psql(
        "postgres",
        &format!(
            "CREATE ROLE admin LOGIN PASSWORD '{ADMIN_PW}' CREATEDB CREATEROLE BYPASSRLS;
             CREATE ROLE anon NOLOGIN; CREATE ROLE authenticated NOLOGIN;
             CREATE ROLE service_role NOLOGIN BYPASSRLS; CREATE ROLE app_owner LOGIN;
             GRANT anon, authenticated, service_role, app_owner TO admin;
             CREATE ROLE platform_auth NOLOGIN;
             {admin_sql}"
        ),
    );
    t
}

pub(crate) fn source_world() -> World {
    source_world_with("")
}

/// The Supabase-style source with `extra` SQL run after [`SOURCE`], backed up.
pub(crate) fn source_world_with(extra: &str) -> World {
    world_from(&format!("{SOURCE}\n{extra}"))
}

/// A source database `app` made by `sql`, backed up.
pub(crate) fn world_from(sql: &str) -> World {
    let w = World::local();
    w.pg.psql("postgres", "DROP DATABASE app");
    w.pg.create_db("app");
    let f = w.dir.path().join("source.sql");
    std::fs::write(&f, sql).unwrap();
    w.pg.psql_file("app", &f);
    w.backup();
    w
}

/// `pgdr restore` as the admin role: repository and identity only, as on a fresh host.
pub(crate) fn restore_as_admin(w: &World, t: &Pg, args: &[&str]) -> Run {
    restore_as_admin_into(w, t, "app", args)
}

/// `pgdr restore` as the admin role into database `db`.
pub(crate) fn restore_as_admin_into(w: &World, t: &Pg, db: &str, args: &[&str]) -> Run {
    run(restore_as_admin_cmd(w, t, db, args))
}

/// The command of [`restore_as_admin_into`], to spawn.
pub(crate) fn restore_as_admin_cmd(
    w: &World,
    t: &Pg,
    db: &str,
    args: &[&str],
) -> std::process::Command {
    let mut c = pgdr_cmd();
    c.arg("restore").arg("--target").arg(format!(
        "postgres://admin:{ADMIN_PW}@127.0.0.1:{}/{db}",
        t.port
    ));
    c.args(args);
    w.repo.apply(&mut c);
    c.arg("--identity").arg(&w.identity);
    c
}

/// Catalog facts of the application schema, compared between source and target.
const APP_QUERIES: &[&str] = &[
    "SELECT c.relname, c.relrowsecurity, pg_get_userbyid(c.relowner) FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1",
    "SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies
      WHERE schemaname = 'public' ORDER BY 1, 2",
    "SELECT proname, prosecdef, pg_get_userbyid(proowner), proacl::text, md5(pg_get_functiondef(oid))
       FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants
      WHERE table_schema = 'public' ORDER BY 1, 2, 3",
    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM public.todos t",
    "SELECT md5(string_agg(p::text, ',' ORDER BY p::text)) FROM public.profiles p",
    "SELECT tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
      WHERE tgrelid = 'auth.users'::regclass AND tgname = 'on_auth_user_created'",
];

/// What `authenticated` sees through RLS as user `sub`.
fn rls_view(pg: &Pg, sub: &str) -> String {
    pg.psql(
        "app",
        &format!(
            "SET ROLE authenticated; SELECT set_config('request.jwt.claim.sub', '{sub}', false);
             SELECT string_agg(title, ',' ORDER BY title) FROM public.todos;
             SELECT public.todo_count(); SELECT count(*) FROM public.profiles;"
        ),
    )
}

#[test]
fn restore_onto_a_managed_target_keeps_the_platform_schema_and_proves_the_app() {
    let w = source_world();
    let t = managed_target();
    let r = restore_as_admin(&w, &t, &["--dry-run"]).ok();
    assert!(
        r.stdout.contains("managed: platform schema auth"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("into the existing database"),
        "{}",
        r.stdout
    );
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.users"), "0");

    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(r.stdout.contains("managed"), "{}", r.stdout);
    // What a non-superuser could not do as the backup says is named, not counted as equal.
    for named in [
        "membership authenticated → anon: granted by admin, not by postgres",
        "passwords not compared (pg_authid is not readable on the target",
        "role 'app_worker': BYPASSRLS not granted (admin is not a superuser",
        "kept on the target, differs from the backup: role app_worker: BYPASSRLS in the backup, NOBYPASSRLS on the target",
    ] {
        assert!(r.stdout.contains(named), "{named}: {}", r.stdout);
    }
    assert!(!r.stdout.contains("roles warning"), "{}", r.stdout);

    for q in APP_QUERIES {
        let source = w.pg.psql("app", q);
        assert!(!source.is_empty(), "nothing to compare: {q}");
        assert_eq!(source, t.psql("app", q), "differs: {q}");
    }
    // The roles the restore created or joined, as on the source.
    let roles = "SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolconnlimit,
                        (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m
                           JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
                   FROM pg_roles r WHERE r.rolname IN ('app_reader', 'app_worker', 'authenticated') ORDER BY 1";
    assert_eq!(w.pg.psql("postgres", roles), t.psql("postgres", roles));
    let users = "SELECT id, email FROM auth.users ORDER BY id";
    assert_eq!(w.pg.psql("app", users), t.psql("app", users));
    // The platform's column at its default; its trigger did not fire (replica), and the
    // application's trigger did not add profiles twice.
    assert_eq!(
        t.psql(
            "app",
            "SELECT string_agg(DISTINCT aud, ',') FROM auth.users"
        ),
        "authenticated"
    );
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.audit_log"), "0");
    assert_eq!(
        t.psql(
            "app",
            "SELECT count(*), count(DISTINCT id) FROM public.profiles"
        ),
        "2|2"
    );
    assert_eq!(
        t.psql(
            "app",
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'auth'"
        ),
        "platform_auth"
    );
    for sub in [U1, U2] {
        assert_eq!(rls_view(&w.pg, sub), rls_view(&t, sub), "RLS as {sub}");
    }
    // The trigger restored onto the platform's table works for new sign-ups.
    t.psql(
        "app",
        "INSERT INTO auth.users (id, email) VALUES ('33333333-3333-3333-3333-333333333333', 'c@example.com')",
    );
    assert_eq!(t.psql("app", "SELECT count(*) FROM public.profiles"), "3");
}

#[test]
fn a_managed_target_with_app_data_is_refused_without_clean_and_clean_spares_the_platform() {
    let w = source_world();
    let t = managed_target();
    t.psql(
        "app",
        "SET ROLE platform_auth; INSERT INTO auth.audit_log (user_id) VALUES (NULL); RESET ROLE;
         CREATE TABLE public.todos (id int); INSERT INTO public.todos VALUES (1);",
    );
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("application schema(s) already hold objects"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--clean"), "{}", r.stderr);
    assert_eq!(t.psql("app", "SELECT count(*) FROM public.todos"), "1");

    let r = restore_as_admin(&w, &t, &["--clean", "--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    for q in APP_QUERIES {
        assert_eq!(w.pg.psql("app", q), t.psql("app", q), "differs: {q}");
    }
    // The platform's schema, its own table's rows and its column are as they were.
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.audit_log"), "1");
    assert_eq!(
        t.psql(
            "app",
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'auth'"
        ),
        "platform_auth"
    );
    assert_eq!(
        t.psql(
            "app",
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'users_audit'"
        ),
        "1"
    );
}

/// State of a trigger on auth.users (`O` enabled, `D` disabled).
pub(crate) fn trigger_state(t: &Pg, name: &str) -> String {
    t.psql(
        "app",
        &format!("SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'auth.users'::regclass AND tgname = '{name}'"),
    )
}

/// Without `GRANT SET ON PARAMETER session_replication_role`, an admin that has the platform
/// table owner's privileges disables its triggers per table and puts each back as it was.
#[test]
fn without_replica_the_platform_triggers_are_disabled_as_owner_and_put_back() {
    let w = source_world();
    let t = managed_target_with("GRANT platform_auth TO admin;");
    t.psql(
        "app",
        "SET ROLE platform_auth;
         CREATE FUNCTION auth.noop() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO auth.audit_log (user_id) VALUES (NULL); RETURN new; END $$;
         CREATE TRIGGER users_noop AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.noop();
         ALTER TABLE auth.users DISABLE TRIGGER users_noop; RESET ROLE;",
    );
    let r = restore_as_admin(&w, &t, &["--dry-run"]).ok();
    assert!(
        r.stdout.contains("triggers on platform tables disabled as their owner while their rows are restored, then put back as they were (admin may not SET session_replication_role): auth.users"),
        "{}",
        r.stdout
    );
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("triggers put back as they were: auth.users (users_audit)"),
        "{}",
        r.stdout
    );
    // Neither platform trigger fired for the restored rows, nor did the application's twice.
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.audit_log"), "0");
    assert_eq!(
        t.psql(
            "app",
            "SELECT count(*), count(DISTINCT id) FROM public.profiles"
        ),
        "2|2"
    );
    let users = "SELECT id, email FROM auth.users ORDER BY id";
    assert_eq!(w.pg.psql("app", users), t.psql("app", users));
    // Each trigger as it was before: the enabled one fires again, the disabled one stays so.
    assert_eq!(trigger_state(&t, "users_audit"), "O");
    assert_eq!(trigger_state(&t, "users_noop"), "D");
    assert_eq!(trigger_state(&t, "on_auth_user_created"), "O");
    t.psql(
        "app",
        "INSERT INTO auth.users (id, email) VALUES ('33333333-3333-3333-3333-333333333333', 'c@example.com')",
    );
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.audit_log"), "1");
    assert_eq!(t.psql("app", "SELECT count(*) FROM public.profiles"), "3");
}

/// Neither replica nor the owner's privileges: refused before anything is written, naming the
/// table, its triggers and the grant that would allow it.
#[test]
fn without_replica_or_the_owner_the_restore_is_refused_by_name() {
    let w = source_world();
    let t = managed_target_with("");
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("admin may not SET session_replication_role nor act as the owner of the platform tables whose triggers would fire for the restored rows: auth.users (users_audit; owner platform_auth)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("GRANT SET ON PARAMETER session_replication_role TO admin"),
        "{}",
        r.stderr
    );
    assert_eq!(
        t.psql(
            "app",
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ),
        "0"
    );
}

/// A restore that fails half-way still puts the platform's triggers back and takes back the
/// CREATE on public it gave the owner for the restore only.
#[test]
fn a_failed_managed_restore_puts_triggers_and_grants_back() {
    // The backup's public schema does not grant CREATE to app_owner: the grant is temporary.
    let w = source_world_with("REVOKE CREATE ON SCHEMA public FROM app_owner;");
    let t = managed_target_with("GRANT platform_auth TO admin;");
    // The platform refuses one of the backup's users: the rows' COPY fails.
    t.psql(
        "app",
        "SET ROLE platform_auth;
         ALTER TABLE auth.users ADD CONSTRAINT no_b CHECK (email <> 'b@example.com'); RESET ROLE;",
    );
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_ne!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no_b"), "{}", r.stderr);
    assert_eq!(trigger_state(&t, "users_audit"), "O");
    assert_eq!(
        t.psql(
            "app",
            "SELECT has_schema_privilege('app_owner', 'public', 'CREATE')"
        ),
        "f"
    );
}

/// Every user table of `db` (by name) and its rows as `COPY ... TO STDOUT` prints them,
/// ordered: the test's own comparison, independent of pgdr's fingerprint.
pub(crate) fn copy_rows(pg: &Pg, db: &str) -> Vec<(String, String)> {
    let tables = pg.psql(
        db,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
          WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            let rows = pg.psql(
                db,
                &format!("COPY (SELECT * FROM {t} ORDER BY 1) TO STDOUT"),
            );
            (t.to_string(), rows)
        })
        .collect()
}

fn databases(pg: &Pg) -> Vec<String> {
    let d = pg.psql("postgres", "SELECT datname FROM pg_database ORDER BY 1");
    d.lines().map(String::from).collect()
}

/// An RDS/Cloud SQL-style application: every object owned by the application's role (the
/// source's master user is no superuser either), grants to a reader, a second schema.
const RDS_SOURCE: &str = r#"
CREATE ROLE app_reader NOLOGIN;
GRANT CREATE ON SCHEMA public TO app_owner;
GRANT CREATE ON DATABASE app TO app_owner;
SET ROLE app_owner;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.todos (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer bigint REFERENCES shop.customers, title text NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE FUNCTION shop.open_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = '' AS $$ SELECT count(*) FROM public.todos WHERE NOT done $$;
GRANT USAGE ON SCHEMA shop TO app_reader;
GRANT SELECT ON shop.customers, public.todos TO app_reader;
INSERT INTO shop.customers (name) VALUES ('ada'), ('grace');
INSERT INTO public.todos (customer, title, done) VALUES (1, 'a1', false), (1, 'a2', true), (2, 'g1', false);
RESET ROLE;
"#;

/// Catalog facts of the RDS-style application, compared between source and target.
const RDS_QUERIES: &[&str] = &[
    "SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('public', 'shop') ORDER BY 1, 2",
    "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace
      WHERE nspname IN ('public', 'shop') ORDER BY 1",
    "SELECT proname, prosecdef, pg_get_userbyid(proowner), md5(pg_get_functiondef(oid))
       FROM pg_proc WHERE pronamespace = 'shop'::regnamespace ORDER BY 1",
];

#[test]
fn swap_on_a_managed_target_the_admin_owns_keeps_the_old_database_renamed() {
    let w = world_from(RDS_SOURCE);
    let t = admin_server("GRANT SET ON PARAMETER session_replication_role TO admin;");
    t.psql("postgres", "CREATE DATABASE app OWNER admin");
    t.psql(
        "app",
        "SET ROLE admin; CREATE TABLE public.old_orders (id int PRIMARY KEY, what text);
         INSERT INTO public.old_orders VALUES (1, 'before the disaster'); RESET ROLE;",
    );
    let r = restore_as_admin(&w, &t, &["--swap", "--managed", "--dry-run"]).ok();
    assert!(
        r.stdout.contains(
            "managed: database: --swap: restored into 'app_restoring', created owned by admin"
        ),
        "{}",
        r.stdout
    );
    assert!(!t.exists("app_restoring"));

    let r = restore_as_admin(&w, &t, &["--swap", "--managed", "--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(
        r.stdout.contains("kept as database app_pre_restore_"),
        "{}",
        r.stdout
    );
    let source = copy_rows(&w.pg, "app");
    assert!(source
        .iter()
        .any(|(t, rows)| t == "public.todos" && rows.lines().count() == 3));
    assert_eq!(source, copy_rows(&t, "app"));
    for q in RDS_QUERIES {
        assert_eq!(w.pg.psql("app", q), t.psql("app", q), "differs: {q}");
    }
    assert_eq!(
        t.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"
        ),
        "admin"
    );
    // The original, renamed and untouched.
    let dbs = databases(&t);
    let kept: Vec<_> = dbs
        .iter()
        .filter(|d| d.starts_with("app_pre_restore_"))
        .collect();
    assert_eq!(kept.len(), 1, "{dbs:?}");
    assert_eq!(
        t.psql(kept[0], "SELECT id, what FROM public.old_orders"),
        "1|before the disaster"
    );
    assert!(!dbs.iter().any(|d| d == "app_restoring"), "{dbs:?}");
}

#[test]
fn swap_on_a_managed_target_is_refused_where_the_admin_cannot_rename() {
    let w = source_world();
    let t = admin_server("");
    t.psql("postgres", "CREATE DATABASE other");
    t.psql(
        "other",
        "CREATE TABLE public.kept (x int); INSERT INTO public.kept VALUES (7);",
    );
    let r = restore_as_admin_into(&w, &t, "other", &["--swap", "--managed", "--yes"]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("admin does not own database 'other' (its owner is postgres)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--clean"), "{}", r.stderr);
    assert_eq!(t.psql("other", "SELECT x FROM public.kept"), "7");
    assert!(!t.exists("other_restoring"));
    // The database the admin connects to by default (Supabase's `postgres`) is never renamed.
    t.psql(
        "postgres",
        "CREATE TABLE public.kept (x int); INSERT INTO public.kept VALUES (8);",
    );
    let r = restore_as_admin_into(&w, &t, "postgres", &["--swap", "--managed", "--yes"]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("'postgres' is the database admin connects to by default"),
        "{}",
        r.stderr
    );
    assert_eq!(t.psql("postgres", "SELECT x FROM public.kept"), "8");
    assert!(!databases(&t).iter().any(|d| d.contains("pre_restore")));
}

/// A source whose application objects the source's superuser `postgres` owns, with grants to
/// application roles: the managed admin can never act as `postgres`.
const SUPERUSER_OWNED_SOURCE: &str = r#"
CREATE ROLE app_reader NOLOGIN;
CREATE SCHEMA shop;
CREATE TABLE shop.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.notes (id int PRIMARY KEY, body text);
CREATE FUNCTION shop.item_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = '' AS $$ SELECT count(*) FROM shop.items $$;
REVOKE EXECUTE ON FUNCTION shop.item_count() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shop.item_count() TO app_reader;
GRANT USAGE ON SCHEMA shop TO app_reader;
GRANT SELECT ON shop.items TO app_reader;
GRANT SELECT, INSERT ON public.notes TO app_owner;
INSERT INTO shop.items (name) VALUES ('bolt'), ('nut');
INSERT INTO public.notes VALUES (1, 'keep');
"#;

#[test]
fn superuser_owned_objects_are_owned_by_the_admin_with_their_grants_and_proven() {
    let w = world_from(SUPERUSER_OWNED_SOURCE);
    let t = admin_server("GRANT SET ON PARAMETER session_replication_role TO admin;");
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
    assert_eq!(copy_rows(&w.pg, "app"), copy_rows(&t, "app"));
    // Independent catalog query: owners are the admin, the application roles' grants are there.
    let owners = "SELECT n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname IN ('public', 'shop') AND c.relkind = 'r' ORDER BY 1";
    assert_eq!(
        t.psql("app", owners),
        "public.notes|admin\nshop.items|admin"
    );
    let grants = "SELECT table_schema || '.' || table_name, grantee, privilege_type
                    FROM information_schema.role_table_grants
                   WHERE table_schema IN ('public', 'shop') AND grantee LIKE 'app\\_%' ORDER BY 1, 2, 3";
    assert_eq!(t.psql("app", grants), w.pg.psql("app", grants));
    assert_eq!(
        t.psql("app", grants),
        "public.notes|app_owner|INSERT\npublic.notes|app_owner|SELECT\nshop.items|app_reader|SELECT"
    );
    let schema =
        "SELECT pg_get_userbyid(nspowner), has_schema_privilege('app_reader', oid, 'USAGE')
                    FROM pg_namespace WHERE nspname = 'shop'";
    assert_eq!(t.psql("app", schema), "admin|t");
    let func = "SELECT pg_get_userbyid(proowner),
                       has_function_privilege('app_reader', oid, 'EXECUTE'),
                       has_function_privilege('anon', oid, 'EXECUTE')
                  FROM pg_proc WHERE proname = 'item_count'";
    assert_eq!(t.psql("app", func), "admin|t|f");
}
