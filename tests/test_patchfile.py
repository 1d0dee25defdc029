from pathlib import Path

import pytest

from veclut.patchfile import changed_lines, parse_patch, parse_series
from veclut.errors import VeclutError

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "patches"

DIFF = """\
diff --git a/src/a.c b/src/a.c
index 1111111..2222222 100644
--- a/src/a.c
+++ b/src/a.c
@@ -3,6 +3,7 @@ int main(void) {
 one
+two
 three
@@ -40 +41,2 @@
-old
+new
+newer
diff --git a/src/new.h b/src/new.h
new file mode 100644
--- /dev/null
+++ b/src/new.h
@@ -0,0 +1 @@
+#pragma once
"""


def test_shipped_series_parses_and_every_patch_has_a_header():
    names = parse_series(PATCHES / "series")
    assert names, "the series is not empty"
    for name in names:
        patch = parse_patch(PATCHES / name)
        assert patch.files
        # the header says what, why, and what upstream change would make the patch unnecessary
        assert "What:" in patch.header and "Why:" in patch.header, name
        assert "Upstream could make it unnecessary" in patch.header, name


def test_shipped_series_stays_small():
    total = sum(changed_lines(PATCHES / n) for n in parse_series(PATCHES / "series"))
    assert total < 1000, f"the patch series changes {total} lines; kernels belong in ggml_ext/"


def test_parse_hunks_and_new_files(tmp_path):
    path = tmp_path / "0001-x.patch"
    path.write_text("Header line.\n\n" + DIFF)
    patch = parse_patch(path)
    assert patch.header == "Header line."
    assert [f.path for f in patch.files] == ["src/a.c", "src/new.h"]
    first = patch.files[0]
    assert [(h.number, h.old_start, h.old_len) for h in first.hunks] == [(1, 3, 6), (2, 40, 1)]
    assert patch.files[1].new_file
    assert patch.hunk_at("src/a.c", 40).number == 2
    assert patch.hunk_at("src/a.c", 41) is None
    assert changed_lines(path) == 5  # +two -old +new +newer +#pragma


def test_patch_without_header_is_refused(tmp_path):
    path = tmp_path / "0001-x.patch"
    path.write_text(DIFF)
    with pytest.raises(VeclutError, match="has no header"):
        parse_patch(path)


def test_patch_without_diff_is_refused(tmp_path):
    path = tmp_path / "0001-x.patch"
    path.write_text("Only words.\n")
    with pytest.raises(VeclutError, match="no `diff --git` sections"):
        parse_patch(path)


def test_series_comments_duplicates_and_missing_files(tmp_path):
    (tmp_path / "a.patch").write_text("h\n\n" + DIFF)
    (tmp_path / "series").write_text("# comment\n\na.patch  # trailing comment\n")
    assert parse_series(tmp_path / "series") == ["a.patch"]
    (tmp_path / "series").write_text("a.patch\na.patch\n")
    with pytest.raises(VeclutError, match="lists a.patch twice"):
        parse_series(tmp_path / "series")
    (tmp_path / "series").write_text("a.patch\nb.patch\n")
    with pytest.raises(VeclutError, match=r"series:2 names b.patch, which is not in"):
        parse_series(tmp_path / "series")


def test_missing_series_file(tmp_path):
    with pytest.raises(VeclutError, match="is missing"):
        parse_series(tmp_path / "series")
