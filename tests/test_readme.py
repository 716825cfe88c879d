"""README.md, the package's long description: its Python blocks run, its links resolve, and
what it says about installing matches setup.cfg and the Makefile."""

import configparser
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXT = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
LINKS = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", TEXT)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__readme__"})


def test_nothing_outside_the_repository_is_referenced():
    # No path above the repository (the team's ../shared notes) and no machine-local path.
    assert "../" not in TEXT and "/work/" not in TEXT


def _anchor(heading):
    # GitHub's rule: lower case, drop punctuation except '-' and '_', spaces become '-'.
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_resolves():
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.*)$", TEXT, flags=re.M)}
    assert LINKS, "the README has no links: the pattern is wrong"
    for link in LINKS:
        if link.startswith(("https://", "http://")):
            continue
        if link.startswith("#"):
            assert link[1:] in anchors, f"no heading for {link}"
        else:  # relative: resolves in the repository (images only; see the next test)
            assert (ROOT / link).is_file(), f"{link} does not exist"


def test_only_images_are_relative():
    # On a package index a relative link is dead; images there fall back to their alt text,
    # which the README writes as a full description.
    for match in re.finditer(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", TEXT):
        bang, alt, link = match.groups()
        if not link.startswith(("https://", "http://", "#")):
            assert bang == "!", f"relative link {link} is dead on a package index"
            assert len(alt.split()) >= 4, f"image {link} needs a descriptive alt text"


def test_install_comes_first_and_names_every_extra():
    headings = re.findall(r"^## (.*)$", TEXT, flags=re.M)
    assert headings[0] == "Install"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    extras = set(setup["options.extras_require"])
    named = set(re.findall(r'pip install "tfp_flows\[(\w+)\]"', TEXT))
    assert named <= extras, f"README names extras setup.cfg lacks: {named - extras}"
    assert {"plot", "digits", "all", "docs"} <= named


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    for target in set(re.findall(r"`make ([\w-]+)`", TEXT)) | {"demo", "test"}:
        assert target in targets, f"README mentions make {target}, the Makefile lacks it"
