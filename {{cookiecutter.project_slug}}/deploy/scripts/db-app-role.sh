# shellcheck shell=bash
{% if cookiecutter.swarm == "yes" -%}
# The app's own database role, not a superuser (the db service of deploy/compose.yaml and of
# deploy/swarm.yaml): the official
{%- else -%}
# The app's own database role, not a superuser (the db service of deploy/compose.yaml): the
# official
{%- endif %} postgres image makes POSTGRES_USER a superuser, which the
# backup service keeps using, while migrations and the app connect as POSTGRES_APP_USER, the
# owner of the database and of everything in it. A superuser could read the server's files and
# run programs on it.
#
# The image runs this once, when it creates the database (a new volume); on a database created
# before, run it by hand, once (CHANGELOG: manual steps), and after changing the password:
#
#   docker compose -f deploy/compose.yaml exec db bash /docker-entrypoint-initdb.d/app-role.sh
#
# It creates the role (or sets its password), and gives it the database and the tables, views
# and sequences in the public schema that the superuser owns (all of them, on a project that
# has used it so far). No `set -e` or `exit`: the image's entrypoint sources this file.
if [[ -n ${POSTGRES_APP_PASSWORD_FILE:-} ]]; then  # a Docker secret, as POSTGRES_PASSWORD_FILE
  POSTGRES_APP_PASSWORD=$(<"$POSTGRES_APP_PASSWORD_FILE")
fi
: "${POSTGRES_APP_USER:?set in the db service}" \
  "${POSTGRES_APP_PASSWORD:?set in .env{% if cookiecutter.swarm == "yes" %} (Swarm: the postgres_app_password secret){% endif %}}"
psql --no-psqlrc --quiet --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  --dbname "${POSTGRES_DB:-$POSTGRES_USER}" --set app="$POSTGRES_APP_USER" \
  --set password="$POSTGRES_APP_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I', :'app')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS PASSWORD %L', :'app', :'password') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'app') \gexec
-- A table's own sequences (serial, identity) follow it.
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                           WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
              nspname, relname, :'app')
  FROM pg_class JOIN pg_namespace ON pg_namespace.oid = relnamespace
  WHERE nspname = 'public' AND relkind IN ('r', 'p', 'v', 'm', 'S')
    AND relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
    AND NOT EXISTS (SELECT FROM pg_depend WHERE classid = 'pg_class'::regclass
                    AND objid = pg_class.oid AND deptype IN ('a', 'i'))
  ORDER BY relkind <> 'S' DESC \gexec
SQL
