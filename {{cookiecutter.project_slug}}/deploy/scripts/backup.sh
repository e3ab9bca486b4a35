#!/usr/bin/env bash
# Backups of the production database. deploy/compose.yaml's `backup` service runs this script in
# the postgres image, so pg_dump and pg_restore are those of the server's major version:
#
#   docker compose -f deploy/compose.yaml run --rm backup now                      # back up now
#   docker compose -f deploy/compose.yaml run --rm backup list                     # the backups
#   docker compose -f deploy/compose.yaml run --rm backup restore [NAME] [--force] # default: newest
#   docker compose -f deploy/compose.yaml run --rm backup prune                    # apply retention
#   docker compose -f deploy/compose.yaml exec backup bash /backup.sh health      # and why
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
readonly started=/tmp/scheduler-started
readonly name_pattern='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$'
# The health check's limit: a day between backups, and two hours for the backup to take.
readonly stale_after_hours=26

# Time limits: a server that accepts the connection and then never answers must fail the
# backup, not stall it (and every later one) unseen. Connecting (TCP, TLS, authentication):
export PGCONNECT_TIMEOUT=10
# A whole pg_dump, and its wait for each table's lock (a migration holding one stalls it).
readonly dump_time_limit=3h lock_wait_timeout=60s

fail() {
  echo "backup: $*" >&2
  exit 1
}

sql() { # notices ("does not exist, skipping") are noise here; no lock is waited for long
  PGOPTIONS="-c client_min_messages=warning -c lock_timeout=60s" psql --no-psqlrc --quiet \
    --no-align --tuples-only --set ON_ERROR_STOP=1 "$@"
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
  [[ -w $root ]] || fail "cannot write to deploy/backups (owner uid $(stat -c %u "$root")," \
    "mode $(stat -c %a "$root")); this service runs as uid $(id -u) (HOST_UID in .env):" \
    "sudo chown $(id -u):$(id -g) deploy/backups && chmod u+rwx deploy/backups"
}

now() {
  check_writable
  local name
  # Named after the time; two backups started within a second get a second apart.
  until name=$(date -u +%Y-%m-%dT%H%M%SZ) partial=$root/.partial-$name &&
    [[ ! -e $root/$name && ! -e $partial ]]; do sleep 1; done
  mkdir "$partial"
  trap 'rm -rf -- "$partial"' EXIT  # $partial is global: the trap runs after now() returns
  local code=0
  timeout --kill-after=10s "$dump_time_limit" pg_dump --format=custom \
    --lock-wait-timeout="$lock_wait_timeout" --file="$partial/$dump" || code=$?
  if ((code == 124 || code == 137)); then
    fail "pg_dump took longer than $dump_time_limit: no backup was written"
  elif ((code != 0)); then
    fail "pg_dump failed: no backup was written"
  fi
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
# Re-added with the parameters the app adds with ({{ cookiecutter.project_slug }}/uploads/storage.py,
# ADD_PARAMETERS; a test keeps the two the same), a file's bytes get its CID back.
readonly add_parameters="cid-version=1&raw-leaves=false&chunker=size-262144&hash=sha2-256"
# Every call to the node: 10 s to connect, at most 30 s without a byte moving either way (a node
# that accepts and never answers), and an hour in all (a file is at most IPFS_MAX_UPLOAD_SIZE).
readonly node_limits=(--connect-timeout 10 --speed-limit 1 --speed-time 30 --max-time 3600)

node() { # COMMAND QUERY [curl options]: the RPC API's answer, or a clear error
  local command=$1 query=$2 answer
  shift 2
  answer=$(curl --fail-with-body --silent --show-error "${node_limits[@]}" --request POST \
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
    # each backup stays whole on its own, and the bytes are stored once. A copy damaged since
    # (the checksum no longer matches) is read from the node again instead, or every later
    # backup would fail on it; the backups that share it stay damaged, and say so.
    if line=$(grep --extended-regexp "^[0-9a-f]{64}  ipfs/$cid\$" "$previous/$sums" 2>/dev/null)
    then
      if ! (cd "$previous" && sha256sum --check --strict --status <<<"$line" 2>/dev/null); then
        echo "ipfs/$cid in ${previous##*/} no longer matches its checksum (damaged):" \
          "read from the node again; ${previous##*/} and the backups that share the copy" \
          "stay damaged" >&2
      elif ln -- "$previous/ipfs/$cid" "$dir/ipfs/$cid" 2>/dev/null; then
        echo "$line" >>"$dir/$sums.tmp"
        linked=$((linked + 1))
        continue
      fi
    fi
    curl --fail-with-body --silent --show-error "${node_limits[@]}" --request POST \
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
    [[ -n $name ]] || fail "there are no backups in deploy/backups"
  fi
  [[ $name =~ $name_pattern && -d $root/$name ]] ||
    fail "no backup named $name in deploy/backups (backup list shows them)"
  check_backup "$root/$name" "$name"
  [[ -n ${APP_ROLE:-} ]] || fail "APP_ROLE is not set: the role the restored database goes to" \
    "(deploy/compose.yaml's backup service sets it)"

  local ours theirs
  ours=$(($(sql --command='SHOW server_version_num') / 10000))
  theirs=$(dumped_major_version "$root/$name/$dump")
  [[ $theirs == "$ours" ]] || fail "$name was dumped from PostgreSQL ${theirs:-?}, this server" \
    "is PostgreSQL $ours: restore it into a PostgreSQL $theirs server, then upgrade that one"

  # Nothing may use the database while it is replaced.
  if getent hosts web >/dev/null; then
    fail "the web service is running: stop it first (docker compose -f deploy/compose.yaml stop web)"
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
  # half-way leaves the database as it was. Everything in it belongs to the app's role
  # (APP_ROLE, not a superuser), whichever role owned it where the backup was taken.
  local staging="${PGDATABASE}__restoring" replaced
  replaced="${PGDATABASE}__replaced_$(date -u +%Y%m%dT%H%M%SZ)"
  sql --dbname=postgres --command="DROP DATABASE IF EXISTS \"$staging\"" \
    --command="CREATE DATABASE \"$staging\" OWNER \"$APP_ROLE\""
  if ! pg_restore --exit-on-error --no-owner --role="$APP_ROLE" --dbname="$staging" \
    "$root/$name/$dump"; then
    sql --dbname=postgres --command="DROP DATABASE \"$staging\""
    fail "pg_restore failed on $name: database $PGDATABASE is unchanged"
  fi
  # One transaction: should a session have connected meanwhile, PostgreSQL refuses the renames
  # ("being accessed by other users") and nothing changes.
  sql --dbname=postgres --command="BEGIN" \
    --command="ALTER DATABASE \"$PGDATABASE\" RENAME TO \"$replaced\"" \
    --command="ALTER DATABASE \"$staging\" RENAME TO \"$PGDATABASE\"" --command="COMMIT"
  # The database it replaced stays, under its new name, until you drop it: a restore of the
  # wrong backup can be undone. An empty one (after `down -v`) holds nothing to keep.
  local kept
  if ((tables > 0)); then
    kept="the database it replaced is kept as $replaced; once you no longer need it:"
    kept+=$'\n'"  docker compose -f deploy/compose.yaml exec db dropdb --username=$PGUSER $replaced"
  else
    sql --dbname=postgres --command="DROP DATABASE \"$replaced\""
  fi
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
  if [[ -n ${kept:-} ]]; then echo "$kept"; fi
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
  date -u +%s >"$started"
  echo "backup: every day after $BACKUP_TIME UTC; keeping the newest of each of the last" \
    "$BACKUP_KEEP_DAILY days and $BACKUP_KEEP_WEEKLY weeks"
  while true; do
    if due; then
      # Each step in its own process, so that a failure is reported and retried, not fatal.
      local result=failed
      if bash "$0" now && bash "$0" prune; then result=succeeded; fi
      echo "$result at $(date -u +%FT%TZ)" >"$status"
    fi
    sleep 60 &
    wait $!
  done
}

hours_since() { # SECONDS: whole hours from then to now
  echo $((($(date -u +%s) - $1) / 3600))
}

health() { # one line; healthy while the newest backup is younger than stale_after_hours
  # Not the last attempt's status: an attempt that hangs never reports one, and one that fails
  # is retried a minute later. The newest backup is what a restore would get, and backups are
  # only ever renamed into place once checked, so it is also the newest good one.
  local newest last="" age
  newest=$(backups | tail -n 1)
  if [[ -f $status ]]; then last="; the last attempt $(<"$status")"; fi
  if [[ -z $newest ]]; then
    # A new deployment: none is due before BACKUP_TIME; give it the same time as any backup.
    [[ -f $started ]] || fail "unhealthy: no backup in deploy/backups, and the scheduler is not running"
    age=$(hours_since "$(<"$started")")
    ((age < stale_after_hours)) ||
      fail "unhealthy: no backup in deploy/backups in the $age hours since the service started$last" \
        "(docker compose logs backup says why)"
    echo "healthy: no backup yet, the service started $age hours ago$last"
    return
  fi
  local taken="${newest:0:10} ${newest:11:2}:${newest:13:2}:${newest:15:2}Z"
  age=$(hours_since "$(date -u --date="$taken" +%s)")
  ((age < stale_after_hours)) ||
    fail "unhealthy: the newest backup, $newest, is $age hours old (limit: under" \
      "$stale_after_hours)$last (docker compose logs backup says why)"
  echo "healthy: the newest backup, $newest, is $age hours old$last"
}

case ${1:-} in
  now | list | prune | schedule | health) "$1" ;;
  restore) shift && restore "$@" ;;
  *) fail "usage: backup now | list | restore [NAME] [--force] | prune | schedule | health" ;;
esac
