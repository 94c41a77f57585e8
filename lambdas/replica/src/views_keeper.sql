-- The views keeper: the views and materialized views over a replicated table, set aside
-- (saved, then dropped) before an ALTER they would block and put back after it, in the
-- caller's transaction, with their owner, options, column defaults, grants, comments,
-- indexes, INSTEAD OF triggers and rules, and a materialized view filled again if it was.
--
-- `@schema@` is where it lives and `@definer@` how it runs. The bootstrap installs it in
-- a schema of the keeper role, SECURITY DEFINER: the replicating role may then keep the
-- readers' views in the readers' schemas without holding the readers' privileges, since
-- these functions only ever recreate what they themselves saved, from the catalog, in the
-- same transaction (a saved row left at commit fails the commit). Where no keeper is
-- installed (a database the bootstrap never set up, replicated by a role that owns the
-- views), the replicator makes the same functions in `pg_temp`, run as itself.
--
-- Every setting that changes how the catalog's definitions are written or read back is
-- pinned on each function: a definition saved under one `standard_conforming_strings`
-- and run under another could end a literal early.

CREATE TABLE IF NOT EXISTS @schema@.views_set_aside (
    table_oid oid NOT NULL,
    position int NOT NULL,
    drop_statement text NOT NULL,
    -- The view, its owner, defaults, comments, grants and indexes.
    statements text[] NOT NULL,
    -- Its triggers and rules, made once every view is back (a rule may name another view).
    attached text[] NOT NULL,
    -- Filled again last, in depth order, if it was filled.
    refresh text,
    PRIMARY KEY (table_oid, position)
);

CREATE OR REPLACE FUNCTION @schema@.views_put_back_check() RETURNS trigger
LANGUAGE plpgsql @definer@
SET search_path = pg_catalog, pg_temp AS $keeper$
BEGIN
    IF EXISTS (SELECT FROM @schema@.views_set_aside WHERE table_oid = NEW.table_oid AND position = NEW.position) THEN
        RAISE EXCEPTION 'the views set aside for % were not put back, so the transaction cannot commit', NEW.table_oid::regclass
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    RETURN NULL;
END
$keeper$;

DO $keeper$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger
                   WHERE tgrelid = '@schema@.views_set_aside'::regclass AND tgname = 'views_put_back') THEN
        CREATE CONSTRAINT TRIGGER views_put_back AFTER INSERT ON @schema@.views_set_aside
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION @schema@.views_put_back_check();
    END IF;
END
$keeper$;

CREATE OR REPLACE FUNCTION @schema@.set_aside_views(tbl regclass) RETURNS int
LANGUAGE plpgsql @definer@
@pinned@ AS $keeper$
DECLARE
    v record;
    n int := 0;
    target text;
    kind text;
    statements text[];
    rule_drops text[] := '{}';
    statement text;
BEGIN
    IF pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') IS NOT TRUE THEN
        RAISE EXCEPTION 'only the owner of % may set its views aside', tbl USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT FROM @schema@.views_set_aside WHERE table_oid = tbl) THEN
        RAISE EXCEPTION 'the views of % are already set aside in this transaction', tbl USING ERRCODE = 'invalid_transaction_state';
    END IF;
    FOR v IN
        WITH RECURSIVE
        -- Who names whom: a relation, and a view (or a table) whose query or other rule
        -- names it; one row per pair, whatever the number of columns named.
        edges AS (
            SELECT d.refobjid AS parent, r.ev_class AS child, bool_or(r.rulename = '_RETURN') AS selects
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND r.ev_class <> d.refobjid
            GROUP BY d.refobjid, r.ev_class
        ),
        -- Everything that names the table, directly or not; rules may make a cycle.
        reached(oid, path) AS (
            SELECT child, ARRAY[tbl::oid, child] FROM edges WHERE parent = tbl::oid
          UNION ALL
            SELECT e.child, reached.path || e.child FROM reached JOIN edges e ON e.parent = reached.oid
            WHERE NOT e.child = ANY(reached.path)
        ),
        members AS (SELECT DISTINCT oid FROM reached),
        -- The order to make them in: after every member a view's query reads from (its
        -- other rules are dropped first and made last, so they order nothing).
        -- Never around a loop (views made to read each other with CREATE OR REPLACE).
        chain(oid, depth, path) AS (
            SELECT oid, 1, ARRAY[oid] FROM members
          UNION ALL
            SELECT e.child, chain.depth + 1, chain.path || e.child
            FROM chain JOIN edges e ON e.parent = chain.oid AND e.selects JOIN members m ON m.oid = e.child
            WHERE NOT e.child = ANY(chain.path)
        )
        SELECT c.oid, n.nspname::text AS nspname, c.relname::text AS relname, c.relkind,
               c.relkind = 'm' AS materialized, c.relispopulated AS populated,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition, c.relowner,
               pg_get_userbyid(c.relowner)::text AS owner, coalesce(c.reloptions, '{}')::text[] AS options,
               obj_description(c.oid, 'pg_class') AS comment, max(chain.depth) AS depth
        FROM chain JOIN pg_class c ON c.oid = chain.oid JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.relispopulated, c.relowner, c.reloptions
        ORDER BY depth, nspname, relname
    LOOP
        target := format('%I.%I', v.nspname, v.relname);
        IF v.relkind NOT IN ('v', 'm') THEN
            RAISE EXCEPTION 'the table % has a rule that uses %, whose column type changes: drop the rule (and make it again after the sync)',
                target, tbl
                USING ERRCODE = 'dependent_objects_still_exist';
        END IF;
        kind := CASE WHEN v.materialized THEN 'materialized view' ELSE 'view' END;
        IF pg_has_role(current_user, v.relowner, 'USAGE') IS NOT TRUE THEN
            RAISE EXCEPTION '% % (owner %) uses %, whose column type changes, and only the views of the readers the configuration names and the replicating role''s own are kept through a type change: drop it (and make it again after the sync), move it to a reader''s schema as that reader, or name its owner as a reader',
                kind, target, v.owner, tbl
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        kind := upper(kind);
        statements := ARRAY[
            format('CREATE %s %s%s AS %s%s', kind, target,
                   CASE WHEN cardinality(v.options) = 0 THEN ''
                        ELSE ' WITH (' || (SELECT string_agg(format('%s = %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
                                            FROM unnest(v.options) AS o) || ')' END,
                   rtrim(rtrim(v.definition), ';'),
                   -- A view's query never runs with the keeper's privileges: a materialized
                   -- view is made empty and filled by REFRESH, which runs as its owner.
                   CASE WHEN v.materialized THEN ' WITH NO DATA' ELSE '' END),
            format('ALTER %s %s OWNER TO %I', kind, target, v.owner)];
        statements := statements || ARRAY(
            SELECT format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', target, a.attname, pg_get_expr(d.adbin, d.adrelid))
            FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
            WHERE d.adrelid = v.oid ORDER BY a.attnum);
        IF v.comment IS NOT NULL THEN
            statements := statements || format('COMMENT ON %s %s IS %L', kind, target, v.comment);
        END IF;
        statements := statements || ARRAY(
            SELECT format('COMMENT ON COLUMN %s.%I IS %L', target, a.attname, col_description(a.attrelid, a.attnum))
            FROM pg_attribute a
            WHERE a.attrelid = v.oid AND a.attnum > 0 AND col_description(a.attrelid, a.attnum) IS NOT NULL
            ORDER BY a.attnum);
        statements := statements || ARRAY(
            SELECT format('GRANT %s ON %s TO %s%s', g.privilege_type, target,
                          CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                          CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
            FROM pg_class c, aclexplode(c.relacl) g
            WHERE c.oid = v.oid AND g.grantee <> c.relowner);
        statements := statements || ARRAY(
            SELECT format('GRANT %s (%I) ON %s TO %s%s', g.privilege_type, a.attname, target,
                          CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                          CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
            FROM pg_attribute a, aclexplode(a.attacl) g
            WHERE a.attrelid = v.oid AND a.attnum > 0 AND a.attacl IS NOT NULL);
        statements := statements || ARRAY(
            SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = v.oid ORDER BY indexrelid);
        INSERT INTO @schema@.views_set_aside VALUES (
            tbl, n, format('DROP %s %s', kind, target), statements,
            ARRAY(SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = v.oid AND NOT tgisinternal ORDER BY tgname)
              || ARRAY(SELECT pg_get_ruledef(oid) FROM pg_rewrite WHERE ev_class = v.oid AND rulename <> '_RETURN' ORDER BY rulename),
            CASE WHEN v.materialized AND v.populated THEN format('REFRESH MATERIALIZED VIEW %s', target) END);
        rule_drops := rule_drops || ARRAY(
            SELECT format('DROP RULE %I ON %s', rulename, target) FROM pg_rewrite
            WHERE ev_class = v.oid AND rulename <> '_RETURN' ORDER BY rulename);
        n := n + 1;
    END LOOP;
    -- The rules first (one may name a view the order below drops earlier), then the views,
    -- deepest first, so that nothing is dropped while another still reads from it.
    FOREACH statement IN ARRAY rule_drops LOOP
        EXECUTE statement;
    END LOOP;
    FOR v IN SELECT drop_statement FROM @schema@.views_set_aside WHERE table_oid = tbl ORDER BY position DESC LOOP
        EXECUTE v.drop_statement;
    END LOOP;
    RETURN n;
END
$keeper$;

-- Puts back what `set_aside_views` saved for `tbl` in this transaction. Returns one line
-- for each materialized view left empty because filling it failed (its owner no longer
-- reads the table, its query fails on the new type): the change goes on, and the line
-- says which view to refresh.
CREATE OR REPLACE FUNCTION @schema@.put_back_views(tbl regclass) RETURNS text[]
LANGUAGE plpgsql @definer@
@pinned@ AS $keeper$
DECLARE
    saved record;
    statement text;
    left_empty text[] := '{}';
BEGIN
    IF pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') IS NOT TRUE THEN
        RAISE EXCEPTION 'only the owner of % may put its views back', tbl USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR saved IN SELECT statements FROM @schema@.views_set_aside WHERE table_oid = tbl ORDER BY position LOOP
        FOREACH statement IN ARRAY saved.statements LOOP
            EXECUTE statement;
        END LOOP;
    END LOOP;
    FOR saved IN SELECT attached FROM @schema@.views_set_aside WHERE table_oid = tbl ORDER BY position LOOP
        FOREACH statement IN ARRAY saved.attached LOOP
            EXECUTE statement;
        END LOOP;
    END LOOP;
    FOR saved IN SELECT refresh FROM @schema@.views_set_aside WHERE table_oid = tbl AND refresh IS NOT NULL ORDER BY position LOOP
        BEGIN
            EXECUTE saved.refresh;
        EXCEPTION WHEN OTHERS THEN
            left_empty := left_empty || format('%s: it stays empty, since filling it again failed (%s); run it as its owner once the cause is fixed', saved.refresh, SQLERRM);
        END;
    END LOOP;
    DELETE FROM @schema@.views_set_aside WHERE table_oid = tbl;
    RETURN left_empty;
END
$keeper$;
