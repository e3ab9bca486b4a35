"""The container tier, backups: the `backup` service of deploy/compose.yaml
(deploy/scripts/backup.sh)
backs up the database and the files IPFS pins, restores both after `docker compose down -v`,
refuses bad input without changing anything, keeps what its retention says and runs on its
own, as the README promises.

One production stack of the default project for the whole module, on the worker that builds the
default project for test_containers.py (its build cache is warm there). Every test brings the
stack up again if the one before stopped part of it.
"""

import hashlib
import os
import re
import secrets
import shutil
import time
from datetime import UTC, datetime

import pytest

from test_containers import (
    HOST_GID, HOST_UID, Project, caddy_trust, docker, eventually, execute, fetch, health, running,
)

pytestmark = pytest.mark.xdist_group("containers-default")
BACKUP_OUTPUT = re.compile(r"^backup (\S+): \S+, checked$", re.MULTILINE)
IPFS_OUTPUT = re.compile(r"^ipfs: (\d+) pinned files saved, (\d+) read from the node and (\d+) "
                         r"hard-linked from \S*$", re.MULTILINE)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    generated = Project({}, tmp_path_factory.mktemp("backups"))
    generated.dev.name += "-backups"  # apart from test_containers.py's stacks
    generated.prod.name += "-backups"
    # Due at once, whatever the time of day: the scheduler backs up as soon as it starts.
    generated.prod.env = generated.prod.env | {"BACKUP_TIME": "00:00"}
    try:
        generated.prod.compose("build", timeout=1200)
        yield generated
    finally:
        generated.remove_images()


@pytest.fixture(scope="module")
def running_stack(project):
    with running(project.prod) as stack:
        yield stack


@pytest.fixture
def stack(running_stack):
    """The stack with every service up, and the scheduler's backup of today taken (so that
    it does not start one in the middle of a test)."""
    running_stack.up()
    eventually(lambda: today() in {name[:10] for name in names(running_stack)}, timeout=60)
    return running_stack


def today():
    return datetime.now(UTC).strftime("%Y-%m-%d")


def backup(stack, *arguments, check=True, options=()):
    """`docker compose run --rm [options] backup [arguments]`."""
    return stack.compose("run", "--rm", *options, "backup", *arguments, check=check)


def names(stack):
    """The backups `backup list` shows, oldest first."""
    return [line.split()[0] for line in backup(stack, "list").stdout.splitlines()]


def shell(stack, script):
    """The last line a Python script prints in the web container, with Django set up."""
    output = stack.exec("web", "python", "manage.py", "shell", "-c", script).stdout
    return output.strip().splitlines()[-1]


def give_to_host_user(path):
    """What the test writes into backups/ belongs to the operator, as the service's files do."""
    if os.getuid() == 0:
        for each in [path, *path.rglob("*")]:
            os.chown(each, HOST_UID, HOST_GID)


def empty_backups(stack):
    """Stop the scheduler and remove every backup."""
    stack.compose("stop", "backup")
    for path in (stack.path / "deploy" / "backups").iterdir():
        if path.name != ".gitignore":
            shutil.rmtree(path)


def copy_backup(stack, source, name):
    target = shutil.copytree(stack.path / "deploy" / "backups" / source, stack.path / "deploy" / "backups" / name)
    give_to_host_user(target)
    return target


def rewrite_checksums(directory):
    files = sorted(path for path in directory.rglob("*")
                   if path.is_file() and path.name != "SHA256SUMS")
    (directory / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(directory)}\n"
        for path in files))


def add_upload(stack, slug, data):
    """An upload of `data` as kept.txt, through the app (pinned on the node): (short ID, CID)."""
    return shell(stack, (
        f"from django.core.files.base import ContentFile; from {slug}.uploads.models import Upload; "
        f"upload = Upload(file=ContentFile({data!r}, name='kept.txt')); upload.save(); "
        "print(upload.pk, upload.cid)")).split()


def refusal(stack, *arguments, options=()):
    """The message of a backup command that must fail."""
    result = backup(stack, *arguments, check=False, options=options)
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


def test_a_backup_brings_the_data_back_after_down_v(stack, project):
    slug, title, password = project.slug, f"Kept {secrets.token_hex(4)}", secrets.token_urlsafe(16)
    created = shell(stack, (
        f"from django.contrib.auth import get_user_model; from {slug}.notes.models import Note; "
        "User = get_user_model(); "
        f"User.objects.create_superuser('admin', 'admin@example.com', {password!r}); "
        f"User.objects.create_user('reader', password={password!r}); "
        f"note = Note.objects.create(title={title!r}, body='kept through a restore'); "
        "print(note.pk, User.objects.count(), Note.objects.count())"))
    note_id, users, notes = created.split()
    content = f"kept through a restore, on IPFS {secrets.token_hex(8)}"
    upload_id, cid = add_upload(stack, slug, content)
    uploads = shell(stack, f"from {slug}.uploads.models import Upload; print(Upload.objects.count())")
    output = backup(stack, "now").stdout
    taken = BACKUP_OUTPUT.findall(output)
    assert len(taken) == 1 and names(stack)[-1] == taken[0]
    files = stack.path / "deploy" / "backups" / taken[0]
    assert sorted(path.name for path in files.iterdir()) == ["SHA256SUMS", "database.dump", "ipfs"]
    assert os.stat(files / "database.dump").st_uid == HOST_UID  # the operator's file
    assert (files / "ipfs" / cid).read_text() == content
    (saved, _, _), = IPFS_OUTPUT.findall(output)
    assert int(saved) == len(list((files / "ipfs").iterdir())) >= 1

    # The next backup keeps the same bytes once: a hard link to this one's copy.
    (again,) = BACKUP_OUTPUT.findall(output := backup(stack, "now").stdout)
    assert IPFS_OUTPUT.findall(output) == [(saved, "0", saved)], output
    assert (stack.path / "deploy" / "backups" / again / "ipfs" / cid).stat().st_ino == \
        (files / "ipfs" / cid).stat().st_ino
    shutil.rmtree(stack.path / "deploy" / "backups" / again)  # the restore below takes the newest

    stack.down()  # --volumes: the database's, the IPFS node's and Caddy's
    volumes = docker("volume", "ls", "--quiet", "--filter",
                     f"label=com.docker.compose.project={stack.name}").stdout
    assert volumes.strip() == ""
    assert (files / "database.dump").is_file()

    restored = backup(stack, "restore").stdout  # the newest; starts the database and the node
    assert f"restored {taken[0]} (PostgreSQL 17) into database {slug}" in restored
    assert f"ipfs: the backup's {saved} files pinned on the node ({saved} added back " \
        "from the backup)" in restored
    rows = dict(re.findall(r"^\s+(\w+)\s+(\d+)$", restored, re.MULTILINE))
    assert (rows[f"{slug}_user"], rows["notes_note"], rows["uploads_upload"]) == \
        (users, notes, uploads), restored
    assert int(rows["django_migrations"]) > 0

    stack.up()
    https, trust = stack.port("caddy", 443), caddy_trust(stack)
    status, _, page = eventually(lambda: fetch(https, f"/notes/{note_id}/", tls=trust))
    assert status == 200 and title in page
    status, _, page = fetch(https, f"/uploads/{upload_id}/", tls=trust)
    assert status == 200 and f"https://ipfs.localhost/ipfs/{cid}?filename=kept.txt" in page
    assert fetch(https, f"/ipfs/{cid}?filename=kept.txt", tls=trust,  # the gateway's own origin
                 headers={"Host": "ipfs.localhost"})[::2] == (200, content)
    assert shell(stack, (
        f"from django.contrib.auth import get_user_model; from {slug}.notes.models import Note; "
        "User = get_user_model(); "
        f"print(User.objects.get(username='admin').check_password({password!r}), "
        "User.objects.count(), Note.objects.count())")).split() == ["True", users, notes]


def test_restore_refuses_bad_input_and_changes_nothing(stack, project):
    slug = project.slug
    count_notes = f"from {slug}.notes.models import Note; print(Note.objects.count())"
    shell(stack, f"from {slug}.notes.models import Note; Note.objects.create(title='before')")
    notes = shell(stack, count_notes)
    _, cid = add_upload(stack, slug, f"an upload {secrets.token_hex(8)}")
    (good,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    dump = stack.path / "deploy" / "backups" / good / "database.dump"

    # Damaged copies, named as older backups so that the newest stays the good one.
    def flip_a_byte(directory):
        data = bytearray((directory / "database.dump").read_bytes())
        data[len(data) // 2] ^= 0x01
        (directory / "database.dump").write_bytes(bytes(data))

    def not_an_archive(directory):
        (directory / "database.dump").write_bytes(secrets.token_bytes(5000))
        rewrite_checksums(directory)

    def truncated(directory):
        data = (directory / "database.dump").read_bytes()
        (directory / "database.dump").write_bytes(data[:len(data) // 2])
        rewrite_checksums(directory)

    def from_postgres_16(directory):
        # The archive's header names the server it was dumped from ("17.x (Debian …)") before
        # anything else that reads "17.": make it a PostgreSQL 16 server's.
        data = (directory / "database.dump").read_bytes()
        start = data.index(b"17.")
        (directory / "database.dump").write_bytes(data[:start] + b"16." + data[start + 3:])
        rewrite_checksums(directory)

    def flip_a_byte_of_a_pinned_file(directory):
        path = directory / "ipfs" / cid
        path.write_bytes(bytes([path.read_bytes()[0] ^ 0x01]) + path.read_bytes()[1:])

    # Bytes saved under a CID the node does not pin, and that is not theirs.
    not_their_cid = "bafybei" + "a" * 52

    def under_another_cid(directory):
        (directory / "ipfs" / cid).rename(directory / "ipfs" / not_their_cid)
        rewrite_checksums(directory)

    damages = {
        flip_a_byte: "checksum mismatch: the file is damaged or was changed after the backup",
        flip_a_byte_of_a_pinned_file: "checksum mismatch",
        under_another_cid: f"ipfs/{not_their_cid}, added back, gives {cid}: not the CID it was "
                           f"saved under (were the app's add parameters changed?); database "
                           f"{slug} is unchanged",
        lambda directory: (directory / "database.dump").unlink(): "has no database.dump",
        lambda directory: (directory / "SHA256SUMS").unlink(): "has no SHA256SUMS",
        not_an_archive: "pg_restore cannot read database.dump",
        truncated: "pg_restore cannot read database.dump",
        from_postgres_16: "was dumped from PostgreSQL 16, this server is PostgreSQL 17",
    }
    stack.compose("stop", "web")
    for number, (damage, message) in enumerate(damages.items(), start=1):
        name = f"2001-01-{number:02}T000000Z"
        damage(copy_backup(stack, good, name))
        assert message in refusal(stack, "restore", name, "--force"), name
    assert "checksum did NOT match" in refusal(stack, "restore", "2001-01-01T000000Z")

    # A sound archive that fails half-way (a grant to a role this server lacks): the database
    # is kept.
    psql = ["db", "psql", "--username", slug, "--dbname", slug, "--command"]
    stack.exec(*psql, "CREATE ROLE ghost; CREATE TABLE haunted (n int); "
                      "GRANT SELECT ON haunted TO ghost")
    (haunted,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    stack.exec(*psql, "DROP TABLE haunted; DROP ROLE ghost")
    failed = refusal(stack, "restore", haunted, "--force")
    assert 'role "ghost" does not exist' in failed
    assert f"pg_restore failed on {haunted}: database {slug} is unchanged" in failed
    assert "no backup named 2001-02-01T000000Z" in refusal(stack, "restore", "2001-02-01T000000Z")
    assert "unknown option --yes" in refusal(stack, "restore", "--yes")

    # A good backup, but the database is in use or not empty.
    assert f"database {slug} is not empty" in refusal(stack, "restore")
    sleeping = "FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
    stack.compose("exec", "--detach", *psql, "SELECT pg_sleep(120)")
    try:
        eventually(lambda: stack.exec(*psql[:-1], "--tuples-only", "--command",
                                      f"SELECT count(*) {sleeping}").stdout.strip() == "1",
                   timeout=30)
        in_use = refusal(stack, "restore", "--force")
        assert f"other sessions use database {slug}" in in_use
        assert re.search(r"process \d+, psql, user \w+, from local socket", in_use), in_use
    finally:
        stack.exec(*psql, f"SELECT pg_terminate_backend(pid) {sleeping}")
    stack.compose("start", "web")
    assert "the web service is running: stop it first" in refusal(stack, "restore", "--force")

    # A backup that cannot be written, or whose dump fails, leaves nothing behind.
    before = sorted(path.name for path in (stack.path / "deploy" / "backups").iterdir())
    (stack.path / "deploy" / "backups").chmod(0o500)
    try:
        assert "cannot write to deploy/backups" in refusal(stack, "now")
    finally:
        (stack.path / "deploy" / "backups").chmod(0o755)
    stack.compose("stop", "ipfs")
    assert "the IPFS node at http://ipfs:5001: pin/ls failed: curl: (6) Could not resolve " \
        "host: ipfs" in refusal(stack, "now", options=["--no-deps"])
    stack.compose("stop", "db")
    assert "pg_dump failed: no backup was written" in refusal(stack, "now", options=["--no-deps"])
    assert sorted(path.name for path in (stack.path / "deploy" / "backups").iterdir()) == before

    stack.up()
    assert shell(stack, count_notes) == notes
    databases = stack.exec(*psql[:-1], "--tuples-only", "--command",
                           "SELECT datname FROM pg_database").stdout.split()
    assert sorted(databases) == sorted(["postgres", "template0", "template1", slug])
    assert dump.is_file()


def test_restore_force_replaces_a_database_in_place(stack, project):
    slug = project.slug
    count_notes = f"from {slug}.notes.models import Note; print(Note.objects.count())"
    notes = shell(stack, count_notes)
    (taken,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    title = f"after the backup {secrets.token_hex(4)}"
    shell(stack, f"from {slug}.notes.models import Note; Note.objects.create(title={title!r})")
    stack.compose("stop", "web")
    restored = backup(stack, "restore", taken, "--force").stdout
    assert f"restored {taken} " in restored
    stack.up()
    assert shell(stack, count_notes) == notes

    # The database it replaced is still there, renamed, with the note written after the backup,
    # and the command that drops it.
    kept, = re.findall(rf"the database it replaced is kept as ({slug}__replaced_\d{{8}}T\d{{6}}Z)"
                       r"; once you no longer need it:$", restored, re.MULTILINE)
    drop = f"docker compose -f deploy/compose.yaml exec db dropdb --username={slug} {kept}"
    assert f"\n  {drop}\n" in restored, restored
    psql = ["db", "psql", "--username", slug, "--tuples-only", "--dbname"]
    assert stack.exec(*psql, kept, "--command", f"SELECT count(*) FROM notes_note WHERE "
                      f"title = '{title}'").stdout.strip() == "1"
    stack.exec(*drop.split()[5:])  # as printed, less `docker compose -f …`
    assert kept not in stack.exec(*psql, slug, "--command",
                                  "SELECT datname FROM pg_database").stdout


def test_the_app_connects_as_a_role_that_is_not_a_superuser(stack, project):
    slug = project.slug
    assert shell(stack, (
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('SELECT current_user, rolsuper FROM pg_roles "
        "WHERE rolname = current_user'); print(*cursor.fetchone())")) == f"{slug}_app False"
    psql = ["db", "psql", "--username", slug, "--dbname", slug, "--tuples-only", "--command"]
    assert stack.exec(*psql, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                      ).stdout.strip() == "t"  # the backup service's role
    owners = "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    assert stack.exec(*psql, owners).stdout.split() == [f"{slug}_app"]
    # A database created before the app's role (CHANGELOG: the manual step): a table of the
    # superuser's, given to the app's role by the script the image ran at creation.
    stack.exec(*psql, "CREATE TABLE legacy (n serial PRIMARY KEY)")
    stack.exec("db", "bash", "/docker-entrypoint-initdb.d/app-role.sh")
    assert stack.exec(*psql, owners).stdout.split() == [f"{slug}_app"]
    assert shell(stack, (
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('INSERT INTO legacy DEFAULT VALUES RETURNING n'); "
        "print(cursor.fetchone()[0])")) == "1"
    stack.exec(*psql, "DROP TABLE legacy")


def test_retention_keeps_the_newest_of_each_day_and_week(stack):
    empty_backups(stack)
    (seed,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    # Backups of simulated days (their names are their times): a manual one on Wednesday
    # afternoon, none on Sunday 15 March, and so on. ISO weeks: 10 (2-8 March), 11, 12.
    simulated = ["2026-03-02T030000Z", "2026-03-08T030000Z", "2026-03-13T030000Z",
                 "2026-03-14T030000Z", "2026-03-16T030000Z", "2026-03-17T030000Z",
                 "2026-03-18T030000Z", "2026-03-18T150000Z"]
    for name in simulated:
        copy_backup(stack, seed, name)
    shutil.rmtree(stack.path / "deploy" / "backups" / seed)
    keep = ("BACKUP_KEEP_DAILY=3", "BACKUP_KEEP_WEEKLY=2")
    keep = [option for pair in keep for option in ("--env", pair)]
    pruned = backup(stack, "prune", options=keep).stdout
    # Three days (18, 17, 16 March: the 18th by its newest), and the newest of week 11 (the
    # 14th); week 12's newest is among the days already.
    assert names(stack) == ["2026-03-14T030000Z", "2026-03-16T030000Z", "2026-03-17T030000Z",
                            "2026-03-18T150000Z"]
    assert sorted(re.findall(r"^pruned (\S+)$", pruned, re.MULTILINE)) == [
        "2026-03-02T030000Z", "2026-03-08T030000Z", "2026-03-13T030000Z", "2026-03-18T030000Z"]
    assert backup(stack, "prune", options=keep).stdout.strip() == ""  # nothing more to do
    assert "BACKUP_KEEP_DAILY=0: not a whole number ≥ 1" in refusal(
        stack, "prune", options=["--env", "BACKUP_KEEP_DAILY=0"])


def test_the_service_backs_up_once_a_day_and_prunes(stack):
    empty_backups(stack)
    (seed,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    old = ["2001-01-01T030000Z", "2001-01-02T030000Z", "2001-01-03T030000Z"]
    for name in old:
        copy_backup(stack, seed, name)
    shutil.rmtree(stack.path / "deploy" / "backups" / seed)
    scheduled = {"BACKUP_KEEP_DAILY": "2", "BACKUP_KEEP_WEEKLY": "0"}
    execute(stack.command("up", "--detach", "--wait", "backup"), stack.path,
            stack.env | scheduled)
    # Today had no backup, so it takes one, then keeps today's and the newest old day's.
    kept = eventually(lambda: (lambda found: found if len(found) == 2 else None)(names(stack)),
                      timeout=60)
    assert kept[0] == old[-1] and kept[1].startswith(today()), kept
    logs = stack.compose("logs", "--no-log-prefix", "backup").stdout
    assert "pruned 2001-01-01T030000Z" in logs and "pruned 2001-01-02T030000Z" in logs
    assert health(stack)["backup"] == ("running", "healthy", 0)
    checked = stack.exec("backup", "bash", "/backup.sh", "health", check=False)
    assert checked.returncode == 0
    assert checked.stdout.startswith(f"healthy: the newest backup, {kept[1]}, is 0 hours old"), \
        checked.stdout


def backup_named(seconds_ago):
    return datetime.fromtimestamp(time.time() - seconds_ago, UTC).strftime("%Y-%m-%dT%H%M%SZ")


def test_health_is_the_age_of_the_newest_backup(stack):
    """Not the last attempt's status: days whose backups fail (or hang, and so never report)
    show as unhealthy once the newest backup is 26 hours old, with the reason."""
    empty_backups(stack)
    (seed,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    stack.compose("stop", "backup")
    # Backed up 26 hours ago, less 15 seconds: healthy for 15 more seconds.
    started = time.monotonic()
    newest = (stack.path / "deploy" / "backups" / seed).rename(
        stack.path / "deploy" / "backups" / backup_named(26 * 3600 - 15))
    # Every attempt fails from now on (and is retried every minute).
    (stack.path / "deploy" / "backups").chmod(0o500)
    try:
        execute(stack.command("up", "--detach", "backup"), stack.path, stack.env)
        check = ["backup", "bash", "/backup.sh", "health"]
        healthy = stack.exec(*check, check=False)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert f"healthy: the newest backup, {newest.name}, is 25 hours old" in healthy.stdout
        stale = eventually(lambda: (lambda result: result.returncode == 1 and result)(
            stack.exec(*check, check=False)), timeout=30, interval=0.2)
        flipped = time.monotonic() - started - 15
        assert -1.5 < flipped < 3, flipped  # names are to the second
        print(f"FIGURE backup health flipped {flipped:.1f} s after the newest backup turned 26 h")
        assert f"backup: unhealthy: the newest backup, {newest.name}, is 26 hours old (limit: " \
            "under 26); the last attempt failed at " in stale.stderr, stale.stderr
        assert "cannot write to deploy/backups" in stack.compose("logs", "backup").stdout
        # Docker's view: one failed check a minute makes it unhealthy.
        eventually(lambda: health(stack)["backup"][1] == "unhealthy", timeout=90, interval=1)
        docker_flipped = time.monotonic() - started - 15
        assert docker_flipped < 75, docker_flipped
        print(f"FIGURE docker compose ps shows the backup service unhealthy {docker_flipped:.0f} s "
              "after the newest backup turned 26 h")
    finally:
        (stack.path / "deploy" / "backups").chmod(0o755)
        stack.compose("stop", "backup")


@pytest.fixture
def stalled(stack):
    """The host name of a server on the stack's networks that accepts connections (the kernel
    completes them) and never answers."""
    name = f"{stack.name}-stalled"
    networks = list(stack.inspect("db")["NetworkSettings"]["Networks"])
    docker("run", "--detach", "--rm", "--name", name, "--network", networks[0],
           "--network-alias", "stalled", "python:3.13-slim", "python", "-c",
           "import socket, time; server = socket.create_server(('', 5001)); time.sleep(3600)")
    try:
        for network in networks[1:]:
            docker("network", "connect", "--alias", "stalled", network, name)
        yield "stalled"
    finally:
        docker("rm", "--force", name, check=False)


def test_a_server_that_never_answers_fails_the_backup_in_time(stack, stalled):
    before = sorted(path.name for path in (stack.path / "deploy" / "backups").iterdir())
    started = time.monotonic()
    message = refusal(stack, "now", options=["--env", f"IPFS_API_URL=http://{stalled}:5001"])
    waited = time.monotonic() - started
    assert f"the IPFS node at http://{stalled}:5001: pin/ls failed: curl: (28) Operation too " \
        "slow. Less than 1 bytes/sec transferred the last 30 seconds" in message, message
    assert 30 <= waited < 50, waited
    print(f"FIGURE a node that never answers fails the backup after {waited:.1f} s")

    started = time.monotonic()
    message = refusal(stack, "now", options=["--env", f"PGHOST={stalled}", "--env", "PGPORT=5001"])
    waited = time.monotonic() - started
    assert "timeout expired" in message and "pg_dump failed: no backup was written" in message, \
        message
    assert 10 <= waited < 25, waited
    print(f"FIGURE a database that never answers fails the backup after {waited:.1f} s")
    assert sorted(path.name for path in (stack.path / "deploy" / "backups").iterdir()) == before


def test_a_damaged_linked_copy_is_read_from_the_node_again(stack, project):
    content = f"linked, then damaged {secrets.token_hex(8)}"
    _, cid = add_upload(stack, project.slug, content)
    (first,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    copy = stack.path / "deploy" / "backups" / first / "ipfs" / cid
    copy.write_bytes(b"X" + copy.read_bytes()[1:])  # in place: every link to it changes
    result = backup(stack, "now")
    (second,) = BACKUP_OUTPUT.findall(result.stdout)
    (saved, fetched, linked), = IPFS_OUTPUT.findall(result.stdout)
    assert int(fetched) == 1 and int(saved) == int(fetched) + int(linked), result.stdout
    assert f"ipfs/{cid} in {first} no longer matches its checksum (damaged): read from the " \
        f"node again; {first} and the backups that share the copy stay damaged" in result.stderr
    again = stack.path / "deploy" / "backups" / second / "ipfs" / cid
    assert again.read_text() == content and again.stat().st_ino != copy.stat().st_ino
    shutil.rmtree(stack.path / "deploy" / "backups" / first)
    # The next backup links the good copy again.
    result = backup(stack, "now")
    assert IPFS_OUTPUT.findall(result.stdout) == [(saved, "0", saved)], result.stdout
