// Package migrations brings a database to the schema of this binary: River's tables through
// River's own migrator, ours from sql/schema and the tern migrations of this folder.
//
// The current definition of every table, function, trigger, view and grant lives in one file
// of sql/schema; that folder, not this one, is where a rule is read and changed. This folder is
// the upgrade path of databases made by earlier releases, and Migrate ends a fresh database and
// an upgraded one identical (a test compares them object by object from the catalogs):
//
//   - State (sql/schema below 0300: tables, constraints, indexes, starting rows). A fresh
//     database is made from sql/schema in one transaction and stamped with the newest migration
//     number. An existing one runs, through tern, the migrations it has not run. A change to a
//     table therefore edits its file in sql/schema and adds a migration here that makes the same
//     change to existing databases; the agreement test fails until the two say the same.
//   - Code (sql/schema from 0300: functions, procedures, triggers, views, grants). After the
//     state, Migrate compares the code files' checksums with qflow.schema_code and, when any
//     differs, drops every code object of schemas qflow and ml and creates them again from
//     sql/schema, all in one transaction (the "repeatable migrations" of Flyway, applied as a
//     whole so that a renamed or removed function goes too and dependencies never dangle).
//     Grants on code objects are given again, and secure_procedures re-applies SECURITY
//     DEFINER. When nothing changed, nothing is touched: no catalog churn, no plan invalidated.
//
// Migrations 001-017 are the history up to the release that introduced this scheme; they are
// frozen (a test pins their checksums) and kept because databases of that release, and older
// ones, upgrade through them. The functions they define are replaced by the code pass.
package migrations
