//! The database's schema and its migrations (`dhcp6d db init`, `dhcp6d db upgrade`).
//!
//! Leases live in Kea's own `lease6` table, laid out as Kea 2.2 (its schema 13.0) has it, so
//! that Kea's tools, Kea itself and Stork read what dhcp6d writes and dhcp6d reads what Kea
//! wrote. On an empty database the first migration creates that table and Kea's two lookup
//! tables; on a database `kea-admin db-init` made, it finds them and adds only dhcp6d's own
//! pieces: nullable columns Kea never names (`dhcp6d_server`, `dhcp6d_interface`,
//! `dhcp6d_reconfigure_key`, `dhcp6d_relay`), the
//! trigger that tells the other servers of each change, and `dhcp6d_schema_version`. Kea's
//! `schema_version` table is Kea's and is left alone; ours counts our migrations only.

use postgres::Client;

use super::DatabaseError;

/// The schema version this dhcp6d runs with: the number of [`MIGRATIONS`].
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// The channel the trigger notifies on, with `address/prefix_len application_name` of each
/// row changed (the writer's `application_name`: a server skips its own changes).
pub const CHANNEL: &str = "dhcp6d_lease6";

/// Each migration, in order: migration `n` (from 1) takes the schema from version `n - 1`
/// to `n`. Each runs in one transaction with the version bump.
const MIGRATIONS: &[&str] = &[
    // 1: Kea 2.2's lease6 (where it is missing), dhcp6d's columns and the change trigger.
    r#"
CREATE TABLE IF NOT EXISTS lease6_types (
    lease_type SMALLINT PRIMARY KEY NOT NULL,
    name VARCHAR(5)
);
INSERT INTO lease6_types VALUES (0, 'IA_NA'), (1, 'IA_TA'), (2, 'IA_PD') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS lease_state (
    state INT8 PRIMARY KEY NOT NULL,
    name VARCHAR(64) NOT NULL
);
INSERT INTO lease_state VALUES (0, 'default'), (1, 'declined'), (2, 'expired-reclaimed') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS lease6 (
    address VARCHAR(39) PRIMARY KEY NOT NULL,
    duid BYTEA,
    valid_lifetime BIGINT,
    expire TIMESTAMP WITH TIME ZONE,
    subnet_id BIGINT,
    pref_lifetime BIGINT,
    lease_type SMALLINT REFERENCES lease6_types (lease_type),
    iaid INT,
    prefix_len SMALLINT,
    fqdn_fwd BOOLEAN,
    fqdn_rev BOOLEAN,
    hostname VARCHAR(255),
    state INT8 DEFAULT 0 REFERENCES lease_state (state),
    hwaddr BYTEA DEFAULT NULL,
    hwtype SMALLINT DEFAULT NULL,
    hwaddr_source SMALLINT DEFAULT NULL,
    user_context TEXT
);
CREATE INDEX IF NOT EXISTS lease6_by_state_expire ON lease6 (state ASC, expire ASC);
CREATE INDEX IF NOT EXISTS lease6_by_duid_iaid_subnet_id ON lease6 (duid, iaid, subnet_id);
ALTER TABLE lease6
    ADD COLUMN IF NOT EXISTS dhcp6d_server BYTEA,
    ADD COLUMN IF NOT EXISTS dhcp6d_interface TEXT,
    ADD COLUMN IF NOT EXISTS dhcp6d_reconfigure_key BYTEA,
    ADD COLUMN IF NOT EXISTS dhcp6d_relay BYTEA;
CREATE OR REPLACE FUNCTION dhcp6d_lease6_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('dhcp6d_lease6', OLD.address || '/' || coalesce(OLD.prefix_len, 128) || ' '
            || current_setting('application_name'));
        RETURN OLD;
    END IF;
    PERFORM pg_notify('dhcp6d_lease6', NEW.address || '/' || coalesce(NEW.prefix_len, 128) || ' '
        || current_setting('application_name'));
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS dhcp6d_lease6_notify ON lease6;
CREATE TRIGGER dhcp6d_lease6_notify AFTER INSERT OR UPDATE OR DELETE ON lease6
    FOR EACH ROW EXECUTE FUNCTION dhcp6d_lease6_notify();
"#,
];

/// The schema version the database holds; `None` if dhcp6d never initialised it.
pub fn version(client: &mut Client) -> Result<Option<i32>, DatabaseError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dhcp6d_schema_version') IS NOT NULL", &[])
        .map_err(DatabaseError::Query)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client.query_opt("SELECT version FROM dhcp6d_schema_version", &[]).map_err(DatabaseError::Query)?;
    Ok(row.map(|r| r.get(0)))
}

/// `dhcp6d db init`: creates the schema on a database that has none of dhcp6d's (Kea's own
/// tables may be there already). Returns the version made.
pub fn init(client: &mut Client) -> Result<i32, DatabaseError> {
    let mut tx = client.transaction().map_err(DatabaseError::Query)?;
    // Two servers initialising one database at once: one waits, then finds the schema there.
    tx.execute("SELECT pg_advisory_xact_lock(6547)", &[]).map_err(DatabaseError::Query)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('dhcp6d_schema_version') IS NOT NULL", &[])
        .map_err(DatabaseError::Query)?
        .get(0);
    if exists {
        return Err(DatabaseError::Schema(
            "the database holds dhcp6d's schema already: `dhcp6d db upgrade` brings it up to date".into(),
        ));
    }
    tx.batch_execute(
        "CREATE TABLE dhcp6d_schema_version (version INT NOT NULL); INSERT INTO dhcp6d_schema_version VALUES (0);",
    )
    .map_err(DatabaseError::Query)?;
    for (n, migration) in MIGRATIONS.iter().enumerate() {
        tx.batch_execute(migration).map_err(|e| DatabaseError::Migration(n as i32 + 1, e))?;
    }
    tx.execute("UPDATE dhcp6d_schema_version SET version = $1", &[&VERSION]).map_err(DatabaseError::Query)?;
    tx.commit().map_err(DatabaseError::Query)?;
    Ok(VERSION)
}

/// `dhcp6d db upgrade`: runs the migrations the database lacks, each in a transaction of its
/// own. Returns the versions before and after.
pub fn upgrade(client: &mut Client) -> Result<(i32, i32), DatabaseError> {
    let Some(from) = version(client)? else {
        return Err(DatabaseError::Schema("the database holds no dhcp6d schema: run `dhcp6d db init` first".into()));
    };
    if from > VERSION {
        return Err(newer(from));
    }
    for n in from..VERSION {
        let mut tx = client.transaction().map_err(DatabaseError::Query)?;
        tx.execute("SELECT pg_advisory_xact_lock(6547)", &[]).map_err(DatabaseError::Query)?;
        // Another dhcp6d may have run it meanwhile.
        let now: i32 = tx
            .query_one("SELECT version FROM dhcp6d_schema_version FOR UPDATE", &[])
            .map_err(DatabaseError::Query)?
            .get(0);
        if now > n {
            continue;
        }
        tx.batch_execute(MIGRATIONS[n as usize]).map_err(|e| DatabaseError::Migration(n + 1, e))?;
        tx.execute("UPDATE dhcp6d_schema_version SET version = $1", &[&(n + 1)]).map_err(DatabaseError::Query)?;
        tx.commit().map_err(DatabaseError::Query)?;
    }
    Ok((from, VERSION))
}

/// Checks, before serving, that the database holds exactly this dhcp6d's schema.
pub fn check(client: &mut Client) -> Result<(), DatabaseError> {
    match version(client)? {
        None => Err(DatabaseError::Schema("the database holds no dhcp6d schema: run `dhcp6d db init`".into())),
        Some(v) if v < VERSION => Err(DatabaseError::Schema(format!(
            "the database's schema is version {v}, this dhcp6d needs {VERSION}: run `dhcp6d db upgrade`"
        ))),
        Some(v) if v > VERSION => Err(newer(v)),
        Some(_) => Ok(()),
    }
}

fn newer(v: i32) -> DatabaseError {
    DatabaseError::Schema(format!(
        "the database's schema is version {v}, newer than this dhcp6d's {VERSION}: upgrade dhcp6d"
    ))
}
