#!/usr/bin/env bash
# Backups of the production database. compose.prod.yaml's `backup` service runs this script in
# the postgres image, so pg_dump and pg_restore are those of the server's major version:
#
#   docker compose -f compose.prod.yaml run --rm backup now                      # back up now
#   docker compose -f compose.prod.yaml run --rm backup list                     # the backups
#   docker compose -f compose.prod.yaml run --rm backup restore [NAME] [--force] # default: newest
#   docker compose -f compose.prod.yaml run --rm backup prune                    # apply retention
#
# Left running (`schedule`, the service's command) it takes a backup every day after
# BACKUP_TIME (UTC), unless that day has one already, then prunes: the newest backup of each of
# the last BACKUP_KEEP_DAILY days and of each of the last BACKUP_KEEP_WEEKLY ISO weeks that
# have backups stay; the rest goes.
#
# A backup is a directory /backups/<UTC time>/ holding database.dump (pg_dump's custom format)
{%- if cookiecutter.ipfs == "yes" %}
# and ipfs/<cid>, a copy of each file the IPFS node pins (its volume goes with `down -v` too),
# and SHA256SUMS, the checksum of every other file in it. It is written under a temporary name,
# checked (checksums, pg_restore reads it whole, the node gives each copy its CID) and only then
# renamed: a failed backup never shows up.
{%- else %}
# and SHA256SUMS, the checksum of every other file in it: what a backup later adds beside the
# dump goes into the same manifest. It is written under a temporary name, checked (checksums,
# and pg_restore reads it whole) and only then renamed: a failed backup never shows up.
{%- endif %}
set -euo pipefail
shopt -s nullglob inherit_errexit  # and command substitutions stop at errors too
umask 077  # a backup holds password hashes and personal data: its owner's alone

readonly root=/backups dump=database.dump sums=SHA256SUMS status=/tmp/last-scheduled-run
readonly name_pattern='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$'

fail() {
  echo "backup: $*" >&2
  exit 1
}

sql() { # notices ("does not exist, skipping") are noise here
  PGOPTIONS="-c client_min_messages=warning" psql --no-psqlrc --quiet --no-align \
    --tuples-only --set ON_ERROR_STOP=1 "$@"
}

backups() { # their names, oldest first (names are UTC times, so they sort by age)
  local path
  for path in "$root"/*/; do
    path=${path%/}
    path=${path##*/}
    if [[ $path =~ $name_pattern ]]; then echo "$path"; fi
  done
}

check_backup() { # DIR NAME: every file as it was written, the dump readable to its end
  local dir=$1 name=$2
  [[ -f $dir/$sums ]] || fail "$name has no $sums: it is incomplete or not a backup"
  [[ -f $dir/$dump ]] || fail "$name has no $dump (missing file)"
  grep -Eq "^[0-9a-f]{64}  $dump\$" "$dir/$sums" || fail "$name: $sums does not list $dump"
  if ! (cd "$dir" && sha256sum --check --strict --quiet "$sums" >&2); then
    fail "$name: checksum mismatch: the file is damaged or was changed after the backup"
  fi
  local error
  error=$(pg_restore --file=/dev/null "$dir/$dump" 2>&1) ||
    fail "$name: pg_restore cannot read $dump, not a complete pg_dump archive: $error"
}

dumped_major_version() { # FILE: the major version of the server it was dumped from
  pg_restore --list "$1" | sed -n 's/^;[[:space:]]*Dumped from database version: \([0-9]*\).*/\1/p'
}

check_writable() {
  [[ -w $root ]] || fail "cannot write to ./backups (owner uid $(stat -c %u "$root")," \
    "mode $(stat -c %a "$root")); this service runs as uid $(id -u) (HOST_UID in .env):" \
    "sudo chown $(id -u):$(id -g) backups && chmod u+rwx backups"
}

now() {
  check_writable
  local name
  # Named after the time; two backups started within a second get a second apart.
  until name=$(date -u +%Y-%m-%dT%H%M%SZ) partial=$root/.partial-$name &&
    [[ ! -e $root/$name && ! -e $partial ]]; do sleep 1; done
  mkdir "$partial"
  trap 'rm -rf -- "$partial"' EXIT  # $partial is global: the trap runs after now() returns
  pg_dump --format=custom --file="$partial/$dump" || fail "pg_dump failed: no backup was written"
  (cd "$partial" && sha256sum -- "$dump" >"$sums.tmp")
{%- if cookiecutter.ipfs == "yes" %}
  save_pins "$partial"
{%- endif %}
  mv -- "$partial/$sums.tmp" "$partial/$sums"
  check_backup "$partial" "$name"
  mv --no-target-directory -- "$partial" "$root/$name"
  trap - EXIT
  echo "backup $name: $(du -sh "$root/$name" | cut -f1), checked"
}

list() {
  local name
  for name in $(backups); do
    printf '%s  %s\n' "$name" "$(du -sh "$root/$name" | cut -f1)"
  done
}

other_sessions() { # one line per session on the database other than this one
  local pid app address user host
  while IFS='|' read -r pid app address user; do
    host=$address
    if [[ $address != "local socket" ]]; then
      host=$(getent hosts "$address" | awk '{print $2}') || true
      host="${host:-$address} ($address)"
    fi
    echo "  process $pid, ${app:-no application name}, user $user, from $host"
  done < <(sql --field-separator='|' --command="SELECT pid, application_name,
      coalesce(host(client_addr), 'local socket'), usename FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid")
}

{%- if cookiecutter.ipfs == "yes" %}

# --- Files on IPFS ------------------------------------------------------------------------------
# Re-added with the parameters the app adds with ({{ cookiecutter.project_slug }}/ipfs.py,
# ADD_PARAMETERS; a test keeps the two the same), a file's bytes get its CID back.
readonly add_parameters="cid-version=1&raw-leaves=false&chunker=size-262144&hash=sha2-256"

node() { # COMMAND QUERY [curl options]: the RPC API's answer, or a clear error
  local command=$1 query=$2 answer
  shift 2
  answer=$(curl --fail-with-body --silent --show-error --connect-timeout 10 --request POST \
    "$@" "$IPFS_API_URL/api/v0/$command?$query" 2>&1) ||
    fail "the IPFS node at $IPFS_API_URL: $command failed:" \
      "$(jq --raw-output .Message 2>/dev/null <<<"$answer" || echo "$answer")"
  echo "$answer"
}

pins() { # the CIDs the node pins (recursively: a whole file each)
  node pin/ls type=recursive | jq --raw-output '.Keys // {} | keys[]'
}

added_cid() { # FILE CID [QUERY]: the CID the node gives FILE's bytes, added as CID was (a
  # version 0 CID, from another node, with version 0's defaults); nothing is pinned
  local parameters=$add_parameters
  if [[ $2 == Qm* ]]; then parameters=${parameters/cid-version=1/cid-version=0}; fi
  node add "$parameters&pin=false&quiet=true${3:-}" --form "file=@$1" | jq --raw-output .Hash
}

save_pins() { # DIR: a copy of each pinned file in DIR/ipfs, its checksum in DIR/SHA256SUMS.tmp
  local dir=$1 previous pinned cid line made fetched=0 linked=0
  previous=$root/$(backups | tail -n 1)
  pinned=$(pins)
  mkdir "$dir/ipfs"
  for cid in $pinned; do
    # A file the last backup has already is hard-linked from it, with its checksum of then:
    # each backup stays whole on its own, the bytes are stored once, and a copy damaged since
    # fails this backup's check.
    if line=$(grep --extended-regexp "^[0-9a-f]{64}  ipfs/$cid\$" "$previous/$sums" 2>/dev/null) &&
      ln -- "$previous/ipfs/$cid" "$dir/ipfs/$cid" 2>/dev/null; then
      echo "$line" >>"$dir/$sums.tmp"
      linked=$((linked + 1))
      continue
    fi
    curl --fail-with-body --silent --show-error --connect-timeout 10 --request POST \
      --output "$dir/ipfs/$cid" "$IPFS_API_URL/api/v0/cat?arg=$cid" ||
      fail "the IPFS node at $IPFS_API_URL cannot give $cid" \
        "($(jq --raw-output .Message <"$dir/ipfs/$cid" 2>/dev/null || echo no answer))"
    made=$(added_cid "$dir/ipfs/$cid" "$cid" "&only-hash=true")
    [[ $made == "$cid" ]] || fail "pinned $cid, read back and hashed, gives $made: the node" \
      "sent it incomplete, or it was added with other parameters than the app's, so a restore" \
      "could not re-create it (unpin it, or add its file again through the app)"
    (cd "$dir" && sha256sum -- "ipfs/$cid" >>"$sums.tmp")
    fetched=$((fetched + 1))
  done
  echo "ipfs: $((fetched + linked)) pinned files saved, $fetched read from the node and" \
    "$linked hard-linked from ${previous##*/}"
}

saved_pins() { # DIR: the CIDs of the files a (checked) backup holds
  sed -n 's|^[0-9a-f]\{64\}  ipfs/\([A-Za-z0-9]*\)$|\1|p' "$1/$sums"
}

add_saved_pins() { # DIR: the files the node does not pin, added back (not pinned yet): their CIDs
  local dir=$1 pinned cid made
  pinned=$(pins)
  for cid in $(saved_pins "$dir"); do
    if grep --quiet --line-regexp --fixed-strings -- "$cid" <<<"$pinned"; then continue; fi
    made=$(added_cid "$dir/ipfs/$cid" "$cid")
    [[ $made == "$cid" ]] || fail "ipfs/$cid, added back, gives $made: not the CID it was" \
      "saved under (were the app's add parameters changed?); database $PGDATABASE is unchanged"
    echo "$cid"
  done
}
{%- endif %}

restore() {
  local name="" force=false argument
  for argument in "$@"; do
    case $argument in
      --force) force=true ;;
      -*) fail "restore: unknown option $argument (usage: restore [NAME] [--force])" ;;
      *) [[ -z $name ]] || fail "restore: one backup at a time"; name=$argument ;;
    esac
  done
  if [[ -z $name ]]; then
    name=$(backups | tail -n 1)
    [[ -n $name ]] || fail "there are no backups in ./backups"
  fi
  [[ $name =~ $name_pattern && -d $root/$name ]] ||
    fail "no backup named $name in ./backups (backup list shows them)"
  check_backup "$root/$name" "$name"

  local ours theirs
  ours=$(($(sql --command='SHOW server_version_num') / 10000))
  theirs=$(dumped_major_version "$root/$name/$dump")
  [[ $theirs == "$ours" ]] || fail "$name was dumped from PostgreSQL ${theirs:-?}, this server" \
    "is PostgreSQL $ours: restore it into a PostgreSQL $theirs server, then upgrade that one"

  # Nothing may use the database while it is replaced.
  if getent hosts web >/dev/null; then
    fail "the web service is running: stop it first (docker compose -f compose.prod.yaml stop web)"
  fi
  local sessions
  sessions=$(other_sessions)
  [[ -z $sessions ]] ||
    fail "other sessions use database $PGDATABASE; end them first:"$'\n'"$sessions"

  local tables
  tables=$(sql --command="SELECT count(*) FROM pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
  if ((tables > 0)) && ! $force; then
    fail "database $PGDATABASE is not empty ($tables tables): restore replaces it only with --force"
  fi

{%- if cookiecutter.ipfs == "yes" %}

  # The files first, unpinned: the node drops none of them before they are pinned (Kubo
  # collects garbage only when asked to, or started with --enable-gc, which the ipfs service
  # is not), and a restore that fails pins nothing.
  local added
  added=$(add_saved_pins "$root/$name")
{%- endif %}

  # Into a new database first, which then takes the old one's name: a restore that fails
  # half-way leaves the database as it was.
  local staging="${PGDATABASE}__restoring" replaced="${PGDATABASE}__replaced"
  sql --dbname=postgres --command="DROP DATABASE IF EXISTS \"$staging\"" \
    --command="DROP DATABASE IF EXISTS \"$replaced\"" --command="CREATE DATABASE \"$staging\""
  if ! pg_restore --exit-on-error --dbname="$staging" "$root/$name/$dump"; then
    sql --dbname=postgres --command="DROP DATABASE \"$staging\""
    fail "pg_restore failed on $name: database $PGDATABASE is unchanged"
  fi
  # One transaction: should a session have connected meanwhile, PostgreSQL refuses the renames
  # ("being accessed by other users") and nothing changes.
  sql --dbname=postgres --command="BEGIN" \
    --command="ALTER DATABASE \"$PGDATABASE\" RENAME TO \"$replaced\"" \
    --command="ALTER DATABASE \"$staging\" RENAME TO \"$PGDATABASE\"" --command="COMMIT"
  sql --dbname=postgres --command="DROP DATABASE \"$replaced\""
{%- if cookiecutter.ipfs == "yes" %}

  local cid
  for cid in $added; do node pin/add "arg=$cid" >/dev/null; done
  echo "ipfs: the backup's $(saved_pins "$root/$name" | wc -l) files pinned on the node" \
    "($(wc -w <<<"$added") added back from the backup)"
{%- endif %}

  echo "restored $name (PostgreSQL $theirs) into database $PGDATABASE; rows per table:"
  sql --command="SELECT format('  %-40s %s', table_name, (xpath('/row/n/text()', query_to_xml(
      format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name), false, true, '')))[1])
    FROM information_schema.tables WHERE table_type = 'BASE TABLE'
      AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name"
}

whole_number() { # NAME MINIMUM: the variable's value, a whole number ≥ MINIMUM
  local value=${!1:-}
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < $2)); then
    fail "$1=$value: not a whole number ≥ $2"
  fi
  echo "$value"
}

prune() {
  check_writable
  local daily weekly
  daily=$(whole_number BACKUP_KEEP_DAILY 1)
  weekly=$(whole_number BACKUP_KEEP_WEEKLY 0)
  local name day week last_day="" last_week="" days=0 weeks=0 keep
  for name in $(backups | sort --reverse); do # newest first: the first of a day is its newest
    day=${name:0:10}
    week=$(date -u --date="$day" +%G-W%V)
    keep=false
    if [[ $day != "$last_day" ]]; then
      days=$((days + 1))
      if ((days <= daily)); then keep=true; fi
    fi
    if [[ $week != "$last_week" ]]; then
      weeks=$((weeks + 1))
      if ((weeks <= weekly)); then keep=true; fi
    fi
    last_day=$day last_week=$week
    if ! $keep; then
      rm -rf -- "${root:?}/$name"
      echo "pruned $name"
    fi
  done
  # What a killed backup left behind (a running one is younger than a day).
  find "$root" -mindepth 1 -maxdepth 1 -name '.partial-*' -mmin +1440 -exec rm -rf -- {} +
}

due() { # whether today (UTC) is past BACKUP_TIME and has no backup yet
  local newest
  newest=$(backups | tail -n 1)
  [[ ! $(date -u +%H:%M) < $BACKUP_TIME && ${newest:0:10} != "$(date -u +%F)" ]]
}

schedule() {
  [[ ${BACKUP_TIME:-} =~ ^([01][0-9]|2[0-3]):[0-5][0-9]$ ]] ||
    fail "BACKUP_TIME=${BACKUP_TIME:-}: not a time of day like 03:00"
  whole_number BACKUP_KEEP_DAILY 1 >/dev/null
  whole_number BACKUP_KEEP_WEEKLY 0 >/dev/null
  trap 'exit 0' TERM INT
  echo "backup: every day after $BACKUP_TIME UTC; keeping the newest of each of the last" \
    "$BACKUP_KEEP_DAILY days and $BACKUP_KEEP_WEEKLY weeks"
  while true; do
    if due; then
      # Each step in its own process, so that a failure is reported and retried, not fatal.
      if bash "$0" now && bash "$0" prune; then echo ok >"$status"; else echo failed >"$status"; fi
    fi
    sleep 60 &
    wait $!
  done
}

health() { # the scheduler's last run succeeded (or it has not run yet)
  [[ ! -f $status || $(<"$status") == ok ]]
}

case ${1:-} in
  now | list | prune | schedule | health) "$1" ;;
  restore) shift && restore "$@" ;;
  *) fail "usage: backup now | list | restore [NAME] [--force] | prune | schedule" ;;
esac
