#!/usr/bin/env python3
"""gen-man.py - writes the section 3 man pages in man/man3 from
include/multiproc.h (with --check: verifies them instead of writing)."""
# Pages: multiproc.3 (overview, error table, families), one page per family
# (a banner section of the header, or one opaque type of a section whose
# functions are grouped by type), and a one-line `.so` page per function.
# Everything comes from the header as it is now: no list of names lives here.

import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "multiproc.h")
MANDIR = os.path.join(ROOT, "man", "man3")
# A comment documents the names it opens with: "mp_a, mp_b - text", or with
# the "_suffix" shorthand "mp_x_new, _free, _size - text".
NAMES = re.compile(r"((?:mp|MP)_\w+(?:, *(?:mp_|MP_)?_?\w+)*)(?: - |\. |\.$|$)")
# One token of the header: a comment, a preprocessor line (with its
# continuations), the extern "C" braces, or a declaration up to its ';'
# (a struct or enum body in braces included).
TOKEN = re.compile(r'(/\*.*?\*/)|(#(?:[^\n]*\\\n)*[^\n]*)|(extern "C" \{|\})'
                   r'|([^;{}/#]+(?:\{[^}]*\}[^;{}/#]*)?;)', re.S)
problems, notes = [], []  # problems fail --check; notes are only printed


class Comment:
    """A comment: its paragraphs ("p") and "- " list items ("li"), and the
    names it opens with (a banner comment has none)."""

    def __init__(self, text, line):
        inner = text[2:-2].split("\n")
        self.line, self.banner, paras, want = line, bool(re.match(r"\s*-{8,}", inner[0])), [], 3
        for k, ln in enumerate(inner):
            ind, s = len(ln) - len(ln.lstrip()), ln.strip()
            if re.fullmatch(r"-*", s):  # a blank line, or a banner's rule
                paras.append(None)
            elif s.startswith("- "):
                paras.append(["li", s[2:]])
                want = ind + 2
            elif paras and paras[-1]:
                paras[-1][1] += " " + s
            else:
                paras.append(["p", s])
            if k and s and not s.startswith("- ") and ind != want and not self.banner:
                notes.append("line %d: continuation line indented %d, not %d (comment of"
                             " line %d)" % (line + k, ind, want, line))
        self.paras = [(kind, " ".join(t.split())) for kind, t in filter(None, paras)]
        self.text = " ".join(t for _, t in self.paras)
        m = NAMES.match(self.text) if not self.banner and self.paras else None
        self.short = [n.strip() for n in m.group(1).split(",")] if m else []
        self.names, self.body = [], list(self.paras)  # names: expanded later
        if m:
            self.body[0] = ("p", self.paras[0][1][m.end():].strip())
            if m.group(0)[len(m.group(1)):].startswith("."):
                notes.append("line %d: %s: names end with '.', not ' - '" % (line, self.short[0]))


class Decl:
    def __init__(self, kind, name, code, line):
        self.kind, self.name, self.code, self.line = kind, name, code, line


def make_decl(code, line):
    flat = " ".join(re.sub(r"/\*.*?\*/", " ", code, flags=re.S).split())
    if flat.startswith("MP_API "):
        proto = re.sub(r"\*\s+(?=\w+\s*\()", "*", flat[len("MP_API "):])
        return Decl("func", re.search(r"(\w+)\s*\(", flat).group(1), proto, line)
    if re.match(r"typedef (struct|enum)\b", flat):  # named after the braces
        m = re.search(r"(\w+)\s*;$", flat)
    elif flat.startswith("typedef"):  # a function pointer, or a plain alias
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", flat) or re.search(r"(\w+)\s*;$", flat)
    else:
        m = re.match(r"(?:struct|enum)\s+(\w+)", flat)
    if not m:
        problems.append("line %d: declaration not understood: %s" % (line, flat))
        return "pp"
    return Decl("type", m.group(1), code.strip(), line)


def parse(src):
    """The header as a list of items: Comment, Decl, "blank" (an empty line
    between two items) or "pp" (anything else: #if, #include, ...)."""
    items, pos = [], 0
    while True:
        gap = re.compile(r"\s*").match(src, pos)
        pos, line = gap.end(), src.count("\n", 0, gap.end()) + 1
        if pos == len(src):
            return items
        if gap.group().count("\n") > 1:
            items.append("blank")
        t = TOKEN.match(src, pos)
        if not t:
            sys.exit("gen-man: include/multiproc.h:%d: not understood" % line)
        text, pos = t.group(), t.end()
        macro = re.match(r"#\s*define\s+(\w+)", text)
        if t.group(1) and items and isinstance(items[-1], Decl) and "\n" not in gap.group():
            notes.append("line %d: comment after the declaration (not used)" % line)
        elif t.group(1):
            items.append(Comment(text, line))
        elif macro:  # a multi-line macro shows as its first line and "..."
            first = re.sub(r"\s*\\$", "", text.split("\n")[0]).rstrip()
            items.append(Decl("macro", macro.group(1), first + " ..." * ("\n" in text), line))
            items[-1].full = text
        else:
            items.append(make_decl(text, line) if t.group(4) else "pp")


def expand(c, known):
    """Comment names with the "_suffix" shorthand resolved against the
    longest prefix of the last full name that gives a declared name."""
    out, full = [], None
    for n in c.short:
        if n.startswith("_"):
            cands = [full.rsplit("_", k)[0] + n for k in range(1, full.count("_"))]
            n = next((x for x in cands if x in known), cands[0] if cands else n)
        else:
            full = n
        out.append(n)
        if n not in known:
            problems.append("line %d: comment names %s, which the header does not declare"
                            % (c.line, n))
    return out


def groups_of(items):
    """Sections (split at banners) of groups: a comment with the declarations
    right below it (none: a comment about no declaration), or declarations
    with no comment above."""
    sections, cur = [(None, [])], None
    for it in items:
        if isinstance(it, Comment) and it.banner:
            sections.append((it, []))
        elif isinstance(it, Comment) or isinstance(it, Decl) and cur is None:
            sections[-1][1].append((it, []) if isinstance(it, Comment) else (None, []))
        if isinstance(it, Decl):
            sections[-1][1][-1][1].append(it)
        cur = it if isinstance(it, (Comment, Decl)) and not getattr(it, "banner", 0) else None
    return sections


def title_of(banner):
    return re.split(r"[:.]", banner.text, 1)[0].strip()


def banner_rest(banner):
    """A banner's paragraphs without its title, or [] when it is only that."""
    first = banner.paras[0][1][len(title_of(banner)):].lstrip(":.").strip()
    return ([("p", first[0].upper() + first[1:])] if first else []) + banner.paras[1:]


def families_of(sections):
    """Families: a banner section is one page, or one page per opaque type
    when each of its functions follows the typedef of its own type."""
    fams = []
    for banner, groups in sections[1:]:
        groups = [g for g in groups if g[1]]
        decls = [d for g in groups for d in g[1]]
        funcs = [d.name for d in decls if d.kind == "func"]
        opaque = [d.name for d in decls if re.fullmatch(r"typedef struct (\w+) \1;", d.code)]
        owner, split = None, len(opaque) > 1
        for d in decls:
            owner = d.name if d.name in opaque else owner
            split = split and (d.kind != "func" or bool(owner) and d.name.startswith(owner + "_"))
        if not funcs:
            continue
        if not split:
            pre = os.path.commonprefix([f + "_" for f in funcs])
            pre = pre[:pre.rfind("_")]
            name = opaque[0] if opaque else pre if pre not in ("", "mp") else funcs[0]
            fams.append(dict(name=name, banner=banner, groups=groups, type=name in opaque))
        for g in groups if split else []:
            if any(d.name in opaque for d in g[1]) or not fams or fams[-1]["banner"] is not banner:
                name = next((d.name for d in g[1] if d.name in opaque), opaque[0])
                fams.append(dict(name=name, banner=banner, groups=[], type=True))
            fams[-1]["groups"].append(g)
    for f in fams:
        f["funcs"] = [d.name for g in f["groups"] for d in g[1] if d.kind == "func"]
        tc = next((c for c, ds in f["groups"] for d in ds if d.name == f["name"] and c), None)
        desc = tc.body[0][1] if f["type"] and tc else \
            re.match(r"(.*?)(\.\s|\.?$)", f["banner"].text).group(1)
        f["desc"] = (desc[0].lower() + desc[1:] if desc[1:2].islower() else desc).rstrip(".")
    return fams


# ---- man(7) output -------------------------------------------------------

def esc(s):
    """Text safe for groff: backslashes, minus signs, leading control chars."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + s if s[:1] in (".", "'") else s


def prose(text, bold=True):
    """Reflowed text, lines of at most 79 bytes once escaped (mandoc's
    style), with the library's names in bold."""
    out = [""]
    for w in text.split():
        w = w.replace("\\", "\\e").replace("-", "\\-")
        w = re.sub(r"\b((?:mp|MP)_\w+)", r"\\fB\1\\fR", w) if bold else w
        if out[-1] and len(out[-1]) + 1 + len(w) > 79:
            out.append("")
        out[-1] += (" " if out[-1] else "") + w
    return ["\\&" + ln if ln[:1] in (".", "'") else ln for ln in out if ln]


def paragraphs(paras, nested):
    """Paragraphs and list items, a comment's list of return codes as its
    own paragraph. nested: inside a .TP entry, whose indent .IP keeps."""
    out = []
    for kind, text in paras:
        for k, part in enumerate(re.split(r"(?<=[.;)])\s+(?=Returns? )", text)):
            lines = prose(part)
            if kind == "li" and k == 0:
                out += [".IP", "\\(bu " + lines[0]] + lines[1:] if nested else [".IP \\(bu 2"] + lines
            else:
                out += [".IP" if nested or kind == "li" else ".PP"] + lines
    return out


def tidy(out):
    """Drops paragraph macros that open a section or an entry (mandoc
    flags them) and joins the page."""
    keep = []
    for ln in out:
        if not (ln in (".PP", ".IP") and (keep[-1][:3] in (".SH", ".SS", ".PP") or keep[-2] == ".TP")):
            keep.append(ln)
    return "\n".join(keep) + "\n"


def proto_lines(proto, name, width=72):
    """A prototype wrapped at commas, continuation under its '(' (man style)."""
    head, args = proto.split("(", 1)
    lines = [head + "(" + args]
    if len(proto) > width:
        lines = [head + "("]
        for a in re.split(r"(?<=,) ", args):
            if lines[-1].endswith("(") or len(lines[-1]) + 1 + len(a) <= width:
                lines[-1] += ("" if lines[-1].endswith("(") else " ") + a
            else:
                lines.append(" " * (len(head) + 1) + a)
    out = [esc(ln) for ln in lines]
    out[0] = out[0].replace(esc(name) + "(", "\\fB%s\\fR(" % esc(name), 1)
    return out


def tag(names, kinds):
    return ", ".join("%s\\fB%s\\fR%s" % ("struct " * (kinds.get(n) == "struct"), esc(n),
                                         "()" * (kinds.get(n) == "func")) for n in names)


def th(name, version):
    return ['.\\" %s(3) - generated by scripts/gen-man.py from include/multiproc.h;'
            ' do not edit.' % name,
            '.TH %s 3 "" "multiproc %s" "multiproc manual"' % (esc(name.upper()), version),
            ".nh", ".ad l"]


def see_also(names):
    return [".SH SEE ALSO"] + [".BR %s (3)%s" % (esc(n), "," * (i < len(names) - 1))
                               for i, n in enumerate(names)]


def error_table(decl):
    """ERRORS: every X(NAME, value, "message") of MP_ERROR_LIST, compact."""
    out = [".SH ERRORS"] + prose("The codes of MP_ERROR_LIST: name, value and message.")
    for k, (name, value, msg) in enumerate(
            re.findall(r'X\((\w+),\s*([^,]+?),\s*"((?:[^"\\]|\\.)*)"\)', decl.full)):
        out += [".TP 22", "\\fB%s\\fR" % esc(name), "%s: %s" % (esc(value.strip()), esc(msg))]
        out += [".PD 0"] * (k == 0)  # no blank line between rows
    return out + [".PD"]


def family_page(f, fams, where, kinds, version):
    names = [f["name"]] * (f["name"] not in f["funcs"]) + f["funcs"]
    out = th(f["name"], version) + [".SH NAME"] + prose(", ".join(names) + " - " + f["desc"], 0)
    out += [".SH SYNOPSIS", ".nf", ".B #include <multiproc.h>"]
    for _, decls in f["groups"]:
        out.append(".sp")
        for d in decls:
            out += proto_lines(d.code, d.name) if d.kind == "func" else \
                [esc(ln) for ln in d.code.split("\n")]
    out += [".fi", ".SH DESCRIPTION"]
    if banner_rest(f["banner"]):  # the section's text, when it says more than a title
        out += paragraphs(f["banner"].paras, False)
    said = set()
    for c, decls in f["groups"]:
        shown = list(dict.fromkeys((c.names if c else []) + [d.name for d in decls]))
        shown = shown if c else [n for n in shown if n not in said]
        if not shown:
            continue  # described by an earlier comment
        said.update(shown)
        local = {d.name: "struct" if d.code.startswith("struct") else d.kind for d in decls}
        out += [".TP", tag(shown, dict(kinds, **local))]
        out += paragraphs(c.body, True) if c else ["Not described in the header."]
    for d in (d for _, ds in f["groups"] for d in ds if d.name == "MP_ERROR_LIST"):
        out += error_table(d)
    out += [".SH RETURN VALUE", "Each function's codes are given with it above;",
            "their names, values and messages are listed in", ".BR multiproc (3)."]
    text = " ".join([f["banner"].text] + [c.text for c, _ in f["groups"] if c])
    refs = {where[n] for n in re.findall(r"\bmp_\w+", text) if n in where}
    return tidy(out + see_also(["multiproc"] + [g["name"] for g in fams if g is not f and (
        g["name"] in refs or g["banner"] is f["banner"])]))


def overview_page(items, sections, fams, version):
    opening = next(it for it in items if isinstance(it, Comment))
    lead = opening.paras[0][1].split(" - ", 1)[-1].rstrip(".")
    out = th("multiproc", version) + [".SH NAME"] + prose("multiproc - " + lead, bold=False)
    out += [".SH SYNOPSIS", ".nf", ".B #include <multiproc.h>", ".fi", ".SH DESCRIPTION"]
    out += paragraphs(opening.paras[1:] or opening.paras, False)
    top = [c for c, _ in sections[0][1] if c and c is not opening]
    for c in top:  # rules comments near the top, about no one declaration
        out += paragraphs(c.paras, False) if not c.short else []
    out.append(".SS Macros")
    for c in top:
        out += [".TP", tag(c.names, {})] + paragraphs(c.body, True) if c.short else []
    errors = None
    for banner, groups in sections[1:]:
        out += [".SS " + esc(title_of(banner))] + paragraphs(banner_rest(banner), False)
        for f in (f for f in fams if f["banner"] is banner):
            out += [".TP", ".BR %s (3)" % esc(f["name"])] + prose(f["desc"])
        errors = errors or next((d for _, ds in groups for d in ds if d.name == "MP_ERROR_LIST"),
                                None)
    if errors is None:
        problems.append("MP_ERROR_LIST not found: no error table")
    return tidy(out + (error_table(errors) if errors else []) + see_also([f["name"] for f in fams]))


def generate():
    with open(HEADER, encoding="utf-8") as fh:
        items = parse(fh.read())
    decls = [it for it in items if isinstance(it, Decl)]
    kinds = {}  # a struct and a function may share a name: the function wins
    for d in decls:
        kinds[d.name] = "func" if kinds.get(d.name) == "func" else d.kind
    comments = [c for c in items if isinstance(c, Comment)]
    for c in comments:
        c.names = expand(c, kinds)
    documented = {n for c in comments for n in c.names}
    items = ["pp" if isinstance(it, Decl) and it.kind == "macro" and it.name not in documented
             else it for it in items]  # the include guard, internal helpers
    v = [re.search(r"MP_VERSION_%s (\d+)" % k, " ".join(d.code for d in decls))
         for k in ("MAJOR", "MINOR", "PATCH")]
    if not all(v):
        sys.exit("gen-man: MP_VERSION_MAJOR, _MINOR, _PATCH not found in the header")
    version = ".".join(m.group(1) for m in v)
    named = set()  # the rule: a comment above a function, or before it, lists it
    for it in items:
        if isinstance(it, Comment):
            named.update(it.names)
        elif isinstance(it, Decl) and it.kind == "func" and it.name not in named:
            problems.append("line %d: %s has no comment naming it" % (it.line, it.name))
    sections = groups_of(items)
    for c in (c for _, groups in sections[1:] for c, ds in groups if c and not ds):
        notes.append("line %d: comment documents no declaration: /* %s */" % (c.line, c.text[:50]))
    fams = families_of(sections)
    where = {d.name: f["name"] for f in fams for g in f["groups"] for d in g[1]}
    pages = {"multiproc.3": overview_page(items, sections, fams, version)}
    for f in fams:
        if f["name"] + ".3" in pages:
            problems.append("two pages named %s.3" % f["name"])
        pages[f["name"] + ".3"] = family_page(f, fams, where, kinds, version)
    for f in fams:
        for fn in f["funcs"]:
            pages.setdefault(fn + ".3", ".so man3/%s.3\n" % f["name"])
    for d in decls:
        if d.kind == "func" and (d.name not in where or d.name + ".3" not in pages):
            problems.append("%s (line %d) is on no page" % (d.name, d.line))
    return pages


def render_check(pages):
    """Render every page; any warning is a problem (but mandoc's about .so
    links and the empty date, both chosen). The .so links resolve against
    the directory above man3, as man-db does."""
    tools = [["groff", "-man", "-ww", "-z", "-Tutf8"], ["mandoc", "-T", "lint", "-W", "warning"],
             ["man", "--warnings", "-l"]]
    cmd = next((t for t in tools if shutil.which(t[0])), None)
    if not cmd:
        print("gen-man: no groff, mandoc or man found: pages not rendered")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "man3"))
        for name, text in pages.items():
            with open(os.path.join(tmp, "man3", name), "w", encoding="utf-8") as fh:
                fh.write(text)
        for name in sorted(pages):
            r = subprocess.run(cmd + ["man3/" + name], cwd=tmp, capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80"))
            said = [ln for ln in (r.stderr + r.stdout * (cmd[0] == "mandoc")).split("\n")
                    if ln.strip() and not re.search(r"\.so is fragile|missing date", ln)]
            if r.returncode or said:
                problems.append("%s warns on man3/%s: %s" % (cmd[0], name,
                                                             "; ".join(said) or r.returncode))


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        sys.exit("usage: gen-man.py [--check]")
    pages = generate()
    present = set(os.listdir(MANDIR)) if os.path.isdir(MANDIR) else set()
    old = {n: open(os.path.join(MANDIR, n), encoding="utf-8").read() for n in present}
    for n in notes:
        print("gen-man: note: " + n, file=sys.stderr)
    if check:
        render_check(pages)
        for name in sorted(set(pages) | present):
            if name not in pages:
                problems.append("man/man3/%s is stale (not generated any more)" % name)
            elif old.get(name) != pages[name]:
                problems.append("man/man3/%s is %s" % (name, "different from what the header "
                                                       "gives" if name in old else "missing"))
    else:
        os.makedirs(MANDIR, exist_ok=True)
        for name in (n for n in pages if old.get(n) != pages[n]):
            with open(os.path.join(MANDIR, name), "w", encoding="utf-8") as fh:
                fh.write(pages[name])
        for name in present - set(pages):
            os.remove(os.path.join(MANDIR, name))
    for p in problems:
        print("gen-man: %s: %s" % ("error" if check else "warning", p), file=sys.stderr)
    if check and problems:
        sys.exit("gen-man: %d problem(s); fix the header or run `make man`" % len(problems))
    print("gen-man: %d pages %s" % (len(pages), "up to date" if check else "written to man/man3"))


if __name__ == "__main__":
    main()
