"""The container tier, backups: the `backup` service of compose.prod.yaml (scripts/backup.sh)
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
    for path in (stack.path / "backups").iterdir():
        if path.name != ".gitignore":
            shutil.rmtree(path)


def copy_backup(stack, source, name):
    target = shutil.copytree(stack.path / "backups" / source, stack.path / "backups" / name)
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
        f"from django.core.files.base import ContentFile; from {slug}.models import Upload; "
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
        f"from django.contrib.auth import get_user_model; from {slug}.models import Note; "
        "User = get_user_model(); "
        f"User.objects.create_superuser('admin', 'admin@example.com', {password!r}); "
        f"User.objects.create_user('reader', password={password!r}); "
        f"note = Note.objects.create(title={title!r}, body='kept through a restore'); "
        "print(note.pk, User.objects.count(), Note.objects.count())"))
    note_id, users, notes = created.split()
    content = f"kept through a restore, on IPFS {secrets.token_hex(8)}"
    upload_id, cid = add_upload(stack, slug, content)
    uploads = shell(stack, f"from {slug}.models import Upload; print(Upload.objects.count())")
    output = backup(stack, "now").stdout
    taken = BACKUP_OUTPUT.findall(output)
    assert len(taken) == 1 and names(stack)[-1] == taken[0]
    files = stack.path / "backups" / taken[0]
    assert sorted(path.name for path in files.iterdir()) == ["SHA256SUMS", "database.dump", "ipfs"]
    assert os.stat(files / "database.dump").st_uid == HOST_UID  # the operator's file
    assert (files / "ipfs" / cid).read_text() == content
    (saved, _, _), = IPFS_OUTPUT.findall(output)
    assert int(saved) == len(list((files / "ipfs").iterdir())) >= 1

    # The next backup keeps the same bytes once: a hard link to this one's copy.
    (again,) = BACKUP_OUTPUT.findall(output := backup(stack, "now").stdout)
    assert IPFS_OUTPUT.findall(output) == [(saved, "0", saved)], output
    assert (stack.path / "backups" / again / "ipfs" / cid).stat().st_ino == \
        (files / "ipfs" / cid).stat().st_ino
    shutil.rmtree(stack.path / "backups" / again)  # the restore below takes the newest

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
    assert (rows[f"{slug}_user"], rows[f"{slug}_note"], rows[f"{slug}_upload"]) == \
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
        f"from django.contrib.auth import get_user_model; from {slug}.models import Note; "
        "User = get_user_model(); "
        f"print(User.objects.get(username='admin').check_password({password!r}), "
        "User.objects.count(), Note.objects.count())")).split() == ["True", users, notes]


def test_restore_refuses_bad_input_and_changes_nothing(stack, project):
    slug = project.slug
    count_notes = f"from {slug}.models import Note; print(Note.objects.count())"
    shell(stack, f"from {slug}.models import Note; Note.objects.create(title='before')")
    notes = shell(stack, count_notes)
    _, cid = add_upload(stack, slug, f"an upload {secrets.token_hex(8)}")
    (good,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    dump = stack.path / "backups" / good / "database.dump"

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

    # A sound archive that fails half-way (an owner this server lacks): the database is kept.
    psql = ["db", "psql", "--username", slug, "--dbname", slug, "--command"]
    stack.exec(*psql, "CREATE ROLE ghost; CREATE TABLE haunted (n int); "
                      "ALTER TABLE haunted OWNER TO ghost")
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
    before = sorted(path.name for path in (stack.path / "backups").iterdir())
    (stack.path / "backups").chmod(0o500)
    try:
        assert "cannot write to ./backups" in refusal(stack, "now")
    finally:
        (stack.path / "backups").chmod(0o755)
    stack.compose("stop", "ipfs")
    assert "the IPFS node at http://ipfs:5001: pin/ls failed: curl: (6) Could not resolve " \
        "host: ipfs" in refusal(stack, "now", options=["--no-deps"])
    stack.compose("stop", "db")
    assert "pg_dump failed: no backup was written" in refusal(stack, "now", options=["--no-deps"])
    assert sorted(path.name for path in (stack.path / "backups").iterdir()) == before

    stack.up()
    assert shell(stack, count_notes) == notes
    databases = stack.exec(*psql[:-1], "--tuples-only", "--command",
                           "SELECT datname FROM pg_database").stdout.split()
    assert sorted(databases) == sorted(["postgres", "template0", "template1", slug])
    assert dump.is_file()


def test_restore_force_replaces_a_database_in_place(stack, project):
    slug = project.slug
    count_notes = f"from {slug}.models import Note; print(Note.objects.count())"
    notes = shell(stack, count_notes)
    (taken,) = BACKUP_OUTPUT.findall(backup(stack, "now").stdout)
    shell(stack, f"from {slug}.models import Note; Note.objects.create(title='after the backup')")
    stack.compose("stop", "web")
    assert f"restored {taken} " in backup(stack, "restore", taken, "--force").stdout
    stack.up()
    assert shell(stack, count_notes) == notes


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
    shutil.rmtree(stack.path / "backups" / seed)
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
    shutil.rmtree(stack.path / "backups" / seed)
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
    assert stack.exec("backup", "bash", "/backup.sh", "health", check=False).returncode == 0

    # A day whose backup fails: reported by the health check (and retried every minute).
    stack.compose("stop", "backup")
    shutil.rmtree(stack.path / "backups" / kept[1])
    (stack.path / "backups").chmod(0o500)
    try:
        execute(stack.command("up", "--detach", "backup"), stack.path, stack.env | scheduled)
        eventually(lambda: stack.exec("backup", "bash", "/backup.sh", "health",
                                      check=False).returncode == 1, timeout=30)
        assert "cannot write to ./backups" in stack.compose("logs", "backup").stdout
    finally:
        (stack.path / "backups").chmod(0o755)
        stack.compose("stop", "backup")
