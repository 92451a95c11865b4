"""Slides that cannot mean what they say are errors naming the file and line: claims that are not true or
false, and slide files that are one file on a case-insensitive file system."""
import pytest

from deck.errors import BuildError
from deck.slides import load_slides
from test_render import render


@pytest.mark.parametrize("expression, gives", [
    ('"yes"', "a string ('yes')"),
    ("3", "a number (3)"),
    ("none", "none (no value)"),
    ("[1, 2]", "a list ([1, 2])"),
    ("no_such_name", "an undefined name"),
    ('result("arith.tensor_sum").label', "a string ('<script>alert(1)</script>')"),
    ('result("arith.tensor_sum").total', "a number (45)"),
    ('result("arith.tensor_sum").total and result("arith.tensor_sum").tiny', "a number (3.2e-07)"),
])
def test_a_claim_that_is_not_true_or_false_is_an_error_at_its_line(project, expression, gives):
    with pytest.raises(BuildError) as caught:
        render(project, f'<!-- .slide: timing=30 -->\n## X\n\n{{% claim {expression}, "it holds" %}}\n')
    assert str(caught.value) == (f'slides/50-x.md:4: claim "it holds": its expression gives {gives}, not true '
                                 'or false; write a comparison, e.g. result("m.f").max_diff < 1e-6')


def test_a_claim_statement_must_be_a_string(project):
    with pytest.raises(BuildError, match=r"^slides/50-x.md:4: a claim's statement must be a quoted string, not a "
                                         r"number \(3\)$"):
        render(project, '<!-- .slide: timing=30 -->\n## X\n\n{% claim 1 < 2, 3 %}\n')


def test_a_boolean_value_is_a_claim(project):
    slide = render(project, '<!-- .slide: timing=30 -->\n## X\n\n{% claim result("arith.tensor_sum").total == 45 '
                            'and not false, "it holds" %}\n')
    assert [c["holds"] for c in slide.claims] == [True]


def test_slide_files_differing_only_in_case_are_an_error_naming_both(project):
    (project / "slides" / "10-Intro.md").write_text("## Again\n")
    with pytest.raises(BuildError) as caught:
        load_slides(project / "slides", project)
    assert str(caught.value) == ("slides/10-intro.md: slides/10-Intro.md and slides/10-intro.md differ only in "
                                 "case: on macOS and Windows they are the same file; rename one")
