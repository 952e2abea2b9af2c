//! The published inventory of the relay's columns (`docs/relay-schema.md`,
//! compiled into the binary, so the document is the single source) and
//! the check of a database's schema against it.

use rusqlite::Connection;

use amana_core::audit::Finding;

/// The inventory page, as published.
const INVENTORY: &str = include_str!("../../../../docs/relay-schema.md");

/// What a column may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// A blob of exactly this many bytes.
    FixedBlob(usize),
    /// A blob of any size (its content is checked per column).
    Blob,
    /// An integer.
    Integer,
    /// An integer or NULL.
    IntegerOrNull,
    /// Text (only documented public keys).
    Text,
}

/// One documented column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// What it may hold.
    pub kind: ColumnType,
}

/// One documented table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Its columns, in document order.
    pub columns: Vec<Column>,
}

/// Every table and column the inventory documents.
pub fn inventory() -> Vec<Table> {
    parse(INVENTORY)
}

/// Reads the tables of the inventory page: a `## \`name\`` heading, then
/// a `| column | type | what |` table.
fn parse(text: &str) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## `") {
            if let Some((name, _)) = heading.split_once('`') {
                tables.push(Table {
                    name: name.to_owned(),
                    columns: Vec::new(),
                });
            }
            continue;
        }
        if line.starts_with("## ") {
            // A section that is not a table (logs).
            tables.push(Table {
                name: String::new(),
                columns: Vec::new(),
            });
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(table), [_, name, kind, ..]) = (tables.last_mut(), cells.as_slice()) else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        if let Some(kind) = column_type(kind) {
            table.columns.push(Column {
                name: name.to_owned(),
                kind,
            });
        }
    }
    tables.retain(|t| !t.name.is_empty());
    tables
}

fn column_type(text: &str) -> Option<ColumnType> {
    Some(match text {
        "INTEGER" => ColumnType::Integer,
        "INTEGER or NULL" => ColumnType::IntegerOrNull,
        "TEXT" => ColumnType::Text,
        "BLOB" => ColumnType::Blob,
        _ => ColumnType::FixedBlob(
            text.strip_prefix("BLOB(")?
                .strip_suffix(')')?
                .parse()
                .ok()?,
        ),
    })
}

/// Compares the database's schema with the inventory: every table,
/// column, view and trigger must be documented.
pub fn check(conn: &Connection, inventory: &[Table]) -> rusqlite::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name FROM sqlite_master
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, table) in &objects {
        let documented = inventory.iter().find(|t| &t.name == table);
        match (kind.as_str(), documented) {
            ("table", None) => findings.push(Finding::alarm(
                "undocumented_table",
                format!("table {name}"),
                "a table the published inventory does not list",
            )),
            ("table", Some(doc)) => {
                let mut info = conn.prepare(&format!("PRAGMA table_info(\"{name}\")"))?;
                let columns: Vec<String> = info
                    .query_map([], |r| r.get(1))?
                    .collect::<Result<_, _>>()?;
                for column in &columns {
                    if !doc.columns.iter().any(|c| &c.name == column) {
                        findings.push(Finding::alarm(
                            "undocumented_column",
                            format!("table {name} column {column}"),
                            "a column the published inventory does not list",
                        ));
                    }
                }
                for column in &doc.columns {
                    if !columns.contains(&column.name) {
                        findings.push(Finding::warning(
                            "missing_column",
                            format!("table {name} column {}", column.name),
                            "documented but absent: the database is older or newer than the inventory",
                        ));
                    }
                }
            }
            // An index only orders what its table holds.
            ("index", Some(_)) => {}
            _ => findings.push(Finding::alarm(
                "undocumented_object",
                format!("{kind} {name}"),
                "a view, trigger or index the relay does not create (it could copy or reveal data)",
            )),
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_lists_every_table_the_migrations_create() {
        let tables = inventory();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "teams",
            "roster_ops",
            "envelopes",
            "heads",
            "equivocations",
            "request_nonces",
            "invites",
            "join_requests",
            "key_envelopes",
            "revocations",
            "compactions",
            "recipients",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let envelopes = tables.iter().find(|t| t.name == "envelopes").unwrap();
        assert_eq!(envelopes.columns[0].kind, ColumnType::FixedBlob(16));
        // A fresh relay database matches the inventory exactly.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        drop(crate::store::SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(check(&conn, &tables).unwrap(), vec![]);
        conn.execute_batch(
            "CREATE TABLE notes (body TEXT); ALTER TABLE teams ADD COLUMN name TEXT;",
        )
        .unwrap();
        let codes: Vec<String> = check(&conn, &tables)
            .unwrap()
            .into_iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, ["undocumented_table", "undocumented_column"]);
    }
}
