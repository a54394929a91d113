"""The parallel lyrics bank: complete, well-formed, translated, and `check` names each fault it finds."""

import copy
from collections import defaultdict

import pytest

from paperlib.data import line_banks as lb
from paperlib.data.line_banks import HOOKS, LANGUAGES, THEMES


def _all_lines():
    """(where, line) for every theme line and hook of the bank."""
    for theme, theme_lines in THEMES.items():
        for index, line in enumerate(theme_lines):
            yield f"{theme}[{index}]", line
    for index, line in enumerate(HOOKS):
        yield f"hook[{index}]", line


def test_the_bank_passes_check_with_16_themes_of_12_lines_and_24_hooks_in_6_languages():
    lb.check()
    assert LANGUAGES == ("en", "fr", "de", "it", "pt", "es")
    assert len(THEMES) == 16 and all(len(theme_lines) == 12 for theme_lines in THEMES.values())
    assert len(HOOKS) == 24
    assert all(tuple(line) == LANGUAGES for _, line in _all_lines())


def test_helpers_give_a_themes_lines_and_a_hook_in_one_language():
    assert lb.lines("sea", "fr") == [line["fr"] for line in THEMES["sea"]]
    assert len(lb.lines("river", "de")) == 12
    assert lb.hook(0, "es") == HOOKS[0]["es"]


def test_no_line_is_shared_between_two_themes_in_any_language():
    themes_of = defaultdict(set)
    for theme, theme_lines in THEMES.items():
        for line in theme_lines:
            for language, text in line.items():
                themes_of[language, text].add(theme)
    shared = {key: themes for key, themes in themes_of.items() if len(themes) > 1}
    assert not shared


def test_english_lines_have_4_to_14_words_theme_lines_6_to_12_and_hooks_4_to_7():
    for where, line in _all_lines():
        assert 4 <= len(line["en"].split()) <= 14, where
    for theme, theme_lines in THEMES.items():
        for index, line in enumerate(theme_lines):
            assert 6 <= len(line["en"].split()) <= 12, (theme, index, line["en"])
    for index, line in enumerate(HOOKS):
        assert 4 <= len(line["en"].split()) <= 7, (index, line["en"])


def test_translations_have_half_to_twice_the_words_of_the_english_line():
    for where, line in _all_lines():
        english = len(line["en"].split())
        for language in LANGUAGES[1:]:
            ratio = len(line[language].split()) / english
            assert 0.5 <= ratio <= 2.0, (where, language, line[language])


@pytest.mark.parametrize(
    "language, letters",
    [("fr", "éèçàêœ"), ("de", "äöüß"), ("it", "àèéìòù"), ("pt", "ãõçáâêôí"), ("es", "ñ¿¡áéíóú")],
)
def test_each_language_uses_its_own_letters(language, letters):
    text = " ".join(line[language] for _, line in _all_lines())
    missing = [letter for letter in letters if letter not in text]
    assert not missing, f"{language} never uses {missing}"


def test_english_is_plain_ascii_and_no_translation_is_left_in_english():
    for where, line in _all_lines():
        assert line["en"].isascii(), where
        for language in LANGUAGES[1:]:
            assert line[language] != line["en"], (where, language)


# --------------------------------------------------------------------------- check rejects each fault


def _small_bank():
    """A copy of two themes and two hooks that passes check, to break one thing in."""
    themes = {theme: [dict(line) for line in THEMES[theme]] for theme in ("sea", "road")}
    return themes, [dict(line) for line in HOOKS[:2]]


def _without(line, language):
    del line[language]


FAULTS = {
    "missing language": (lambda t, h: _without(t["sea"][3], "fr"), "fr"),
    "extra language": (lambda t, h: t["sea"][3].update(nl="De lichten van de haven."), "nl"),
    "empty line": (lambda t, h: t["sea"][3].update(de=""), "de"),
    "blank line": (lambda t, h: t["sea"][3].update(de="   "), "de"),
    "leading space": (lambda t, h: t["sea"][3].update(it=" " + t["sea"][3]["it"]), "it"),
    "trailing space": (lambda t, h: t["sea"][3].update(it=t["sea"][3]["it"] + " "), "it"),
    "double space": (lambda t, h: t["sea"][3].update(pt=t["sea"][3]["pt"].replace(" ", "  ", 1)), "pt"),
    "newline": (lambda t, h: t["sea"][3].update(pt=t["sea"][3]["pt"].replace(" ", "\n", 1)), "pt"),
    "no final punctuation": (lambda t, h: t["sea"][3].update(es=t["sea"][3]["es"][:-1]), "es"),
    "ellipsis": (lambda t, h: t["sea"][3].update(es=t["sea"][3]["es"] + ".."), "es"),
    "two marks": (lambda t, h: t["sea"][3].update(es=t["sea"][3]["es"][:-1] + "?!"), "es"),
    "colon": (lambda t, h: t["sea"][3].update(es=t["sea"][3]["es"][:-1] + ":"), "es"),
    "duplicate in a theme": (lambda t, h: t["sea"][3].update(fr=t["sea"][1]["fr"]), "fr"),
    "short english": (lambda t, h: t["sea"][3].update(en="Hello there."), "en"),
    "long english": (lambda t, h: t["sea"][3].update(en="one two three four " * 4 + "go."), "en"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_check_rejects_a_faulty_line_naming_its_theme_and_language(fault):
    themes, hooks = _small_bank()
    lb.check(themes, hooks)
    mutate, language = FAULTS[fault]
    mutate(themes, hooks)
    with pytest.raises(ValueError) as error:
        lb.check(themes, hooks)
    message = str(error.value)
    assert "'sea'" in message and language in message and "line 3" in message
    assert "\n" not in message


@pytest.mark.parametrize("count", [11, 13])
def test_check_rejects_a_theme_without_12_lines(count):
    themes, hooks = _small_bank()
    themes["sea"] = (themes["sea"] + [copy.deepcopy(THEMES["winter"][0])])[:count]
    with pytest.raises(ValueError, match=f"'sea': {count} lines"):
        lb.check(themes, hooks)


def test_check_rejects_a_line_shared_by_two_themes_naming_both():
    themes, hooks = _small_bank()
    themes["road"][5]["de"] = themes["sea"][2]["de"]
    with pytest.raises(ValueError) as error:
        lb.check(themes, hooks)
    message = str(error.value)
    assert "'road' line 5 (de)" in message and "'sea' line 2" in message and "\n" not in message


def test_check_rejects_a_faulty_hook_naming_its_index_and_language():
    themes, hooks = _small_bank()
    hooks[1]["fr"] = hooks[1]["fr"] + " "
    with pytest.raises(ValueError, match=r"hook 1 \(fr\)"):
        lb.check(themes, hooks)
    themes, hooks = _small_bank()
    hooks[1]["it"] = themes["road"][0]["it"]
    with pytest.raises(ValueError, match=r"hook 1 \(it\): duplicate of theme 'road' line 0"):
        lb.check(themes, hooks)
