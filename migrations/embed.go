// Package migrations holds the versioned SQL schema for every supported
// database dialect. Files are named NNNN_name.sql and live in one folder per
// dialect; services/store applies them in lexical order and records each
// applied version in schema_migrations.
//
// Applied files must never be edited: add a new, higher-numbered file instead,
// since a database that already ran a version will not run it again. Files
// must not contain BEGIN/COMMIT: the store runs each one inside its own
// transaction together with the row recording it, so a failed migration
// leaves no trace.
package migrations

import "embed"

// FS is embedded so a single binary carries its own schema and cannot drift
// from the migrations it was built with.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
