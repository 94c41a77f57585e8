//! Users' views and materialized views over a replicated table, saved and dropped before an
//! `ALTER` they would block and recreated after it, in the same transaction, with their
//! owner, options, grants (table and column), comments, indexes (materialized views),
//! INSTEAD OF triggers and rules.
//!
//! This replaces the hand-installed "pg-deps-management" SQL other tools need: nothing is
//! installed in the database.

use crate::model::{quote_ident, quote_literal};
use sqlx::postgres::PgConnection;
use sqlx::postgres::types::Oid;

#[derive(Debug, Clone)]
pub struct SavedView {
    materialized: bool,
    schema: String,
    name: String,
    definition: String,
    owner: String,
    options: Vec<String>,
    comment: Option<String>,
    column_comments: Vec<(String, String)>,
    grants: Vec<String>,
    /// Indexes, triggers and rules: statements that recreate them as they were.
    attached: Vec<String>,
}

impl SavedView {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    fn kind(&self) -> &'static str {
        if self.materialized { "MATERIALIZED VIEW" } else { "VIEW" }
    }
}

/// Views that depend on the table, directly or through other views, shallowest first.
const DEPENDENTS: &str = "
WITH RECURSIVE deps(oid, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = $1::oid AND r.ev_class <> $1::oid
  UNION
    SELECT r.ev_class, deps.depth + 1
    FROM deps JOIN pg_depend d ON d.refobjid = deps.oid AND d.refclassid = 'pg_class'::regclass
      AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> deps.oid
)
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'm', pg_get_viewdef(c.oid),
       pg_get_userbyid(c.relowner)::text, coalesce(c.reloptions, '{}')::text[], obj_description(c.oid, 'pg_class'),
       max(deps.depth)::int4 AS depth
FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.relowner, c.reloptions
ORDER BY depth, n.nspname, c.relname";

/// What goes with a view and must be recreated with it: indexes (materialized views),
/// INSTEAD OF triggers and rules (writable views), each as the statement that makes it.
const ATTACHED: [&str; 3] = [
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1 ORDER BY indexrelid",
    "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname",
    "SELECT pg_get_ruledef(oid) FROM pg_rewrite WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY rulename",
];

pub async fn save_and_drop(db: &mut PgConnection, schema: &str, table: &str) -> Result<Vec<SavedView>, sqlx::Error> {
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let oid: Oid = sqlx::query_scalar("SELECT $1::text::regclass::oid").bind(&qualified).fetch_one(&mut *db).await?;
    type Dependent = (Oid, String, String, bool, String, String, Vec<String>, Option<String>, i32);
    let dependents: Vec<Dependent> = sqlx::query_as(DEPENDENTS).bind(oid).fetch_all(&mut *db).await?;
    let mut saved = Vec::new();
    for (view_oid, schema, name, materialized, definition, owner, options, comment, _depth) in dependents {
        let column_comments: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, col_description(a.attrelid, a.attnum) FROM pg_attribute a
             WHERE a.attrelid = $1 AND a.attnum > 0 AND col_description(a.attrelid, a.attnum) IS NOT NULL",
        )
        .bind(view_oid)
        .fetch_all(&mut *db)
        .await?;
        let grants: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                    a.privilege_type, a.is_grantable
             FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = $1 AND a.grantee <> c.relowner",
        )
        .bind(view_oid)
        .fetch_all(&mut *db)
        .await?;
        let mut attached = Vec::new();
        for sql in ATTACHED {
            attached.extend(sqlx::query_scalar::<_, String>(sql).bind(view_oid).fetch_all(&mut *db).await?);
        }
        let column_grants: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT a.attname::text,
                    CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                    g.privilege_type, g.is_grantable
             FROM pg_attribute a, aclexplode(a.attacl) g
             WHERE a.attrelid = $1 AND a.attnum > 0 AND a.attacl IS NOT NULL",
        )
        .bind(view_oid)
        .fetch_all(&mut *db)
        .await?;
        let mut view = SavedView {
            materialized,
            schema,
            name,
            definition,
            owner,
            options,
            comment,
            column_comments,
            grants: Vec::new(),
            attached,
        };
        let target = view.qualified();
        view.grants = grants
            .into_iter()
            .map(|(grantee, privilege, grantable)| {
                let option = if grantable { " WITH GRANT OPTION" } else { "" };
                format!("GRANT {privilege} ON {target} TO {grantee}{option}")
            })
            .chain(column_grants.into_iter().map(|(column, grantee, privilege, grantable)| {
                let option = if grantable { " WITH GRANT OPTION" } else { "" };
                format!("GRANT {privilege} ({}) ON {target} TO {grantee}{option}", quote_ident(&column))
            }))
            .collect();
        saved.push(view);
    }
    // Deepest first, so nothing is dropped while another view still needs it.
    for view in saved.iter().rev() {
        crate::batch(&format!("DROP {} {}", view.kind(), view.qualified())).execute(&mut *db).await?;
    }
    Ok(saved)
}

/// Recreates the views as they were. A view's query must never run with the replicator's
/// privileges: a plain view's query does not run when it is created, and a materialized
/// view is created empty (`WITH NO DATA`), given to its owner, and filled by a `REFRESH`
/// under the owner's role, as the owner's own refresh would be.
pub async fn restore(db: &mut PgConnection, saved: &[SavedView]) -> Result<(), sqlx::Error> {
    for view in saved {
        let target = view.qualified();
        let with = if view.options.is_empty() { String::new() } else { format!(" WITH ({})", view.options.join(", ")) };
        let definition = view.definition.trim_end().trim_end_matches(';');
        let no_data = if view.materialized { " WITH NO DATA" } else { "" };
        let owner = quote_ident(&view.owner);
        let mut sql = vec![
            format!("CREATE {} {target}{with} AS {definition}{no_data}", view.kind()),
            format!("ALTER {} {target} OWNER TO {owner}", view.kind()),
        ];
        if let Some(c) = &view.comment {
            sql.push(format!("COMMENT ON {} {target} IS {}", view.kind(), quote_literal(c)));
        }
        for (column, c) in &view.column_comments {
            sql.push(format!("COMMENT ON COLUMN {target}.{} IS {}", quote_ident(column), quote_literal(c)));
        }
        sql.extend(view.grants.iter().cloned());
        sql.extend(view.attached.iter().cloned());
        if view.materialized {
            sql.push(format!("SET LOCAL ROLE {owner}"));
            sql.push(format!("REFRESH MATERIALIZED VIEW {target}"));
            sql.push("RESET ROLE".to_owned());
        }
        for s in sql {
            crate::batch(&s).execute(&mut *db).await?;
        }
    }
    Ok(())
}
