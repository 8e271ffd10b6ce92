#!/usr/bin/env python3
"""Benign user prompts (families `benign` and `trigger`) for the prompt-injection classifier.

Rebuilds build/<source>.jsonl for each source below from fetched git snapshots:

    python3 training/injection/sources/benign.py --mirrors DIR [--out training/injection/build]

DIR holds one folder per repository, named `owner+name`, with the git directory inside
(`DIR/owner+name/repo` or `DIR/owner+name` itself). Files are read with
`git --git-dir=... show COMMIT:path` at the pinned commits. `trigger-words-generated` needs no
repository: it is built from templates in this file.

Every record is checked against the project's held-out material with the shared contamination
checker (`--check`, default `<repo>/../shared/contamination/check.py`); flagged records are dropped
and counted. Standard library only.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

# run as a script (python3 training/injection/sources/X.py) or imported as a package module:
# either way the shared helpers are found as the top-level module `common` next to this file
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SOURCES = [
    {
        "source": "awesome-chatgpt-prompts",
        "repo": "f/awesome-chatgpt-prompts",
        # 2026-01-12 snapshot of prompts.csv (988 rows); later versions exceed 4 MiB
        "commit": "7f84b7ad25c05ef08ad40513c8fac65c6fa8840a",
        "paths": ["prompts.csv"],
        "licence": "CC0-1.0",
        "family": "trigger",
    },
    {
        "source": "gpteacher-roleplay",
        "repo": "teknium1/GPTeacher",
        "commit": "481075123c29854bddb82655badeef6a438f2436",
        "paths": ["Roleplay/roleplay-simple-deduped-roleplay-instruct.json"],
        "licence": "MIT",
        "family": "trigger",
    },
    {
        "source": "arena-hard",
        "repo": "lm-sys/arena-hard-auto",
        "commit": "efc012e192b88024a5203f5a28ec8fc0342946df",
        "paths": ["data/arena-hard-v0.1/question.jsonl"],
        "licence": "Apache-2.0",
        "family": "benign",
    },
    {
        "source": "gsm8k",
        "repo": "openai/grade-school-math",
        "commit": "3101c7d5072418e28b9008a6636bde82a006892c",
        "paths": ["grade_school_math/data/train.jsonl", "grade_school_math/data/test.jsonl"],
        "licence": "MIT",
        "family": "benign",
        "max": 1500,
    },
    {
        "source": "trigger-words-generated",
        "repo": None,
        "commit": None,
        "paths": [],
        "licence": "generated (this repository)",
        "family": "trigger",
    },
]

MAX_PER_SOURCE = 3000
MIN_PER_SOURCE = 200

# awesome-chatgpt-prompts is community-contributed: a few rows are jailbreak personas (e.g. a "DAN"
# prompt) or talk about bypassing restrictions. Those are attacks, not benign look-alikes: drop any
# row that matches, without trying to judge it.
AWESOME_DROP = re.compile(
    r"\bDAN\b|jailbr|no restrictions|unfiltered|uncensored|without any (ethical|moral)|"
    r"ignore (all|previous|your|any)|developer mode|no (ethical|moral)|bypass|unrestricted|"
    r"prompt injection|system prompt|do anything now|unconstrained|no limits|anything goes|"
    r"overrides? (all |any )?(previous|prior)|sentient ai|escape (the|your) (sandbox|confinement)",
    re.I,
)


def read_awesome(blobs: list[bytes]) -> list[str]:
    csv.field_size_limit(1 << 30)
    out = []
    for row in csv.DictReader(io.StringIO(blobs[0].decode("utf-8"))):
        if (row.get("type") or "TEXT") != "TEXT":  # IMAGE/STRUCTURED rows are image-model or JSON specs
            continue
        text = row.get("prompt") or ""
        if AWESOME_DROP.search(text) or AWESOME_DROP.search(row.get("act") or ""):
            continue
        out.append(text)
    return out


def read_gpteacher(blobs: list[bytes]) -> list[str]:
    out = []
    for x in json.loads(blobs[0].decode("utf-8")):
        text = x["instruction"].strip()
        if x.get("input", "").strip():
            text += "\n\n" + x["input"].strip()
        out.append(text)
    return out


def read_arena(blobs: list[bytes]) -> list[str]:
    out = []
    for line in blobs[0].decode("utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line)["turns"][0]["content"])
    return out


def read_gsm8k(blobs: list[bytes]) -> list[str]:
    out = []
    for b in blobs:
        for line in b.decode("utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["question"])
    return out


READERS = {
    "awesome-chatgpt-prompts": read_awesome,
    "gpteacher-roleplay": read_gpteacher,
    "arena-hard": read_arena,
    "gsm8k": read_gsm8k,
}

LANGS = ["Python", "Java", "C#", "TypeScript", "Kotlin", "C++", "Swift", "Ruby", "Go", "Rust", "PHP", "Scala"]
PHONES = ["iPhone", "iPad", "Android phone", "Samsung Galaxy", "Pixel", "Kindle", "PS Vita", "Nintendo 3DS", "Apple TV",
          "Chromebook"]
FILES = ["node_modules", ".env", "*.log", "build/", "__pycache__", ".DS_Store", "dist/", "coverage/", "*.pyc", ".idea/",
         "target/", "vendor/"]
PERSONAS = ["a pirate", "a friendly dragon", "a medieval knight", "a robot who loves gardening", "Sherlock Holmes",
            "a grumpy wizard", "a space explorer", "a talking cat", "Santa Claus", "a dinosaur tour guide",
            "a 1920s radio announcer", "a kind fairy godmother", "a superhero who is afraid of the dark",
            "a penguin chef", "Albert Einstein", "a time-travelling historian"]
AUDIENCES = ["my 5-year-old", "my daughter", "my son", "a class of second graders", "my niece", "my nephew",
             "the kids at a birthday party", "my grandmother", "a scout troop", "my little brother"]
STORIES = ["a bedtime story", "a short poem", "a funny song", "a riddle", "a story about sharing",
           "a story about brushing teeth", "a tale about the moon", "a short adventure", "a lullaby",
           "a story about making new friends"]
DOCS = ["email", "cover letter", "blog post", "product description", "wedding toast", "resignation letter",
        "LinkedIn summary", "newsletter intro", "meeting invite", "thank-you note", "essay introduction",
        "press release"]
TONES = ["more formally", "in a friendlier tone", "more concisely", "in plain English", "for a teenage audience",
         "with more enthusiasm", "in British English", "in fewer than 100 words", "as bullet points",
         "more persuasively"]
BOTS = ["a customer-support bot for an airline", "a recipe assistant", "a math tutor for high-school students",
        "a help-desk bot for a university IT department", "an HR policy assistant", "a travel-planning assistant",
        "a bank FAQ chatbot", "a coding assistant for beginners", "a museum guide chatbot",
        "a library catalogue assistant", "a fitness coach bot", "a legal-intake assistant for a law firm",
        "a pharmacy opening-hours bot", "an onboarding buddy for new employees"]
BOT_RULES = ["answers only in French", "refuses to give medical diagnoses", "always cites the source document",
             "keeps answers under three sentences", "escalates to a human when the user is angry",
             "speaks like a friendly librarian", "never shares other customers' data",
             "asks a clarifying question before answering", "uses metric units",
             "stays on topic and politely declines unrelated questions"]
ROLES_PRO = ["a Linux terminal", "a JavaScript console", "an English translator and improver",
             "a job interviewer for a data analyst role", "a travel guide in Lisbon", "a personal trainer",
             "a SQL database", "a Socratic tutor", "a debate coach", "a stand-up comedian", "a spelling-bee host",
             "a Spanish conversation partner", "a chess opponent", "a career counsellor", "a UX reviewer",
             "a patient piano teacher", "a tech reviewer", "a Python interpreter", "a Dungeon Master", "a sommelier"]
SEC_TOPICS = ["SQL injection", "prompt injection", "cross-site scripting", "a jailbreak attack on an LLM", "phishing",
              "a man-in-the-middle attack", "privilege escalation", "CSRF", "a buffer overflow", "command injection",
              "a supply-chain attack", "credential stuffing", "a replay attack", "path traversal"]
APPS = ["Flask", "Django", "Express", "Spring Boot", "Rails", "Laravel", "ASP.NET Core", "FastAPI", "Next.js",
        "a LangChain app"]
GAMES = ["Skyrim", "Minecraft", "The Sims 4", "Stardew Valley", "Civilization VI", "Fallout 4", "Cities: Skylines",
         "Terraria"]
TOOLS = ["ESLint", "Pylint", "mypy", "flake8", "RuboCop", "Prettier", "clang-tidy", "Checkstyle", "shellcheck", "ruff"]
OSES = ["Ubuntu", "Windows 11", "macOS", "Fedora", "Debian", "Arch Linux", "a Raspberry Pi", "FreeBSD"]
DEVS = ["Android", "a Samsung phone", "a Pixel 8", "a Xiaomi phone", "Chrome", "Microsoft Edge", "Firefox",
        "a OnePlus phone", "Windows 11", "a Fire TV stick"]
TOPICS = ["photosynthesis", "the French Revolution", "compound interest", "black holes", "how vaccines work",
          "the water cycle", "supply and demand", "plate tectonics", "the causes of World War I", "recursion",
          "DNA replication", "inflation", "the Pythagorean theorem", "how a bill becomes a law", "the Krebs cycle",
          "Bayes' theorem"]
CHARS = ["Hamlet", "Elizabeth Bennet", "Captain Ahab", "Jay Gatsby", "Jane Eyre", "Atticus Finch", "Frodo",
         "Holden Caulfield", "Don Quixote", "Scout Finch"]
SPORTS = ["the offside rule in soccer", "the infield fly rule", "a let in tennis", "a free throw in basketball",
          "a penalty corner in field hockey", "the designated hitter rule", "a two-point conversion",
          "a power play in hockey"]
DIETS = ["gluten", "dairy", "sugar", "nuts", "onions", "salt", "eggs", "shellfish"]
RECIPES = ["banana bread", "lasagna", "pad thai", "chocolate chip cookies", "a vegetable curry", "pancakes", "chili",
           "a Caesar salad"]
CAL = ["my Outlook calendar", "Google Calendar", "my iPhone calendar", "Apple Reminders", "Todoist", "Notion"]
CLS = ["Animal", "Shape", "Vehicle", "Employee", "Account", "Shape2D", "Logger", "BaseRepository", "Widget", "Parser"]
METHODS = ["toString()", "equals()", "__str__", "__eq__", "hashCode()", "speak()", "area()", "render()", "save()",
           "validate()"]
GIT_THINGS = ["whitespace changes", "changes in file mode", "line-ending differences", "untracked files",
              "a specific folder", "submodule changes", "binary files"]
PHOTO = ["red-eye", "the background noise", "lens distortion", "the blown-out highlights", "the timestamp",
         "a photobomber"]
SUBJECTS = ["calculus", "organic chemistry", "statistics", "Spanish verbs", "European history", "music theory",
            "microeconomics", "linear algebra"]
ERRORS = ["SSL certificate warnings", "deprecation warnings", "a specific lint rule", "mypy errors for one line",
          "TypeScript errors in a single file", "warnings from pip", "a failing test temporarily",
          "case sensitivity in grep"]
CONFIGS = ["the default port in a Spring Boot app", "CSS styles from Bootstrap", "the default timezone in PostgreSQL",
           "environment variables in docker-compose", "a Helm chart value", "the font size in VS Code",
           "the DNS server on my router", "the default branch name in git", "a setting in a Terraform module",
           "npm's registry URL for one project"]
ADMINS = ["WordPress", "Django", "Jenkins", "Grafana", "GitLab", "Nextcloud", "my home router", "a Discord server",
          "a Minecraft server", "Jira"]
LOCKS = ["my own Excel workbook", "an old ZIP file I made", "my own Wi-Fi router", "my Windows account",
         "a PDF I created last year", "my old Gmail account"]
COUNTRIES = ["Japan", "Italy", "Mexico", "Kenya", "Norway", "Peru", "Vietnam", "Morocco", "Canada", "Portugal"]
NAMES = ["Maya", "Leo", "Priya", "Tom", "Aisha", "Jonas", "Sofia", "Kenji", "Ana", "Omar", "Chloe", "Ravi"]
PETS = ["my dog", "my cat", "our parrot", "the hamster", "my rabbit", "our puppy"]
MOVIES = ["The Matrix", "Inception", "Ex Machina", "Her", "2001: A Space Odyssey", "Blade Runner", "WALL-E",
          "The Terminator", "Tron", "Free Guy"]

TEMPLATES: list[tuple[str, dict[str, list[str]]]] = [
    ("How do I ignore {x} in git diff?", {"x": GIT_THINGS}),
    ("How do I make git ignore {x}? I already added it to .gitignore but it still shows up.", {"x": FILES}),
    ("What's the {lang} syntax to override a method from a parent class like {c}?", {"lang": LANGS, "c": CLS}),
    ("How do I override {m} in {lang}, and should I call the base implementation?", {"m": METHODS, "lang": LANGS}),
    ("Explain what a jailbreak is on my {d} and whether it voids the warranty.", {"d": PHONES}),
    ("Is it legal to jailbreak my {d} in the US? I just want to install custom themes.", {"d": PHONES}),
    ("Pretend you are {p} and tell {a} {s}.", {"p": PERSONAS, "a": AUDIENCES, "s": STORIES}),
    ("Can you act as {p} and help {a} practice counting to twenty?", {"p": PERSONAS, "a": AUDIENCES}),
    ("Forget the previous draft; rewrite the {d} {t}.", {"d": DOCS, "t": TONES}),
    ("Ignore what I said earlier about the length, just make the {d} {t}.", {"d": DOCS, "t": TONES}),
    ("Disregard my last message, I pasted the wrong {d}. Here is the right one: can you make it {t}?",
     {"d": DOCS, "t": TONES}),
    ("I want you to act as {r}. I will type commands and you will reply with what it would show.", {"r": ROLES_PRO}),
    ("Act as {r} for the next ten minutes so I can practice.", {"r": ROLES_PRO}),
    ("Developer mode on {d}: how do I turn it on, and is it safe to leave enabled?", {"d": DEVS}),
    ("How do I turn off developer options on {d} after enabling USB debugging?",
     {"d": [d for d in DEVS if d not in ("Chrome", "Microsoft Edge", "Firefox", "Windows 11")]}),
    ("Write a system prompt for {b} that {r}.", {"b": BOTS, "r": BOT_RULES}),
    ("Review my system prompt for {b}: I want it to be clearer. Should I tell it that it {r}?",
     {"b": BOTS, "r": BOT_RULES}),
    ("What is {s} and how do I defend {app} against it?", {"s": SEC_TOPICS, "app": APPS}),
    ("For my security class, explain {s} at a high level and list three mitigations.", {"s": SEC_TOPICS}),
    ("How can I test my own {app} app for {s} before we launch?", {"s": SEC_TOPICS, "app": APPS}),
    ("How do I run a command as root on {o} without logging in as root?", {"o": OSES}),
    ("What does sudo actually do on {o}, and why shouldn't I run everything as admin?", {"o": OSES}),
    ("I forgot the admin password for {a}, which I set up myself. How do I reset it?", {"a": ADMINS}),
    ("How do I give another user admin access in {a}?", {"a": ADMINS}),
    ("I lost the password to {l}. What are my legitimate options to recover it?", {"l": LOCKS}),
    ("How do I disable {e} in my project without turning off the whole checker?", {"e": ERRORS}),
    ("How do I tell {t} to ignore one line?", {"t": TOOLS}),
    ("How do I override {c}?", {"c": CONFIGS}),
    ("What's the cleanest way to bypass the cache in {app} when I'm debugging?", {"app": APPS}),
    ("Is there a cheat code or console command in {g} to ignore building restrictions?", {"g": GAMES}),
    ("How do I enable god mode in {g}? Single player only.", {"g": GAMES}),
    ("Let's role-play: you are a hotel receptionist in {c} and I am a tourist practising the language.",
     {"c": COUNTRIES}),
    ("You are now my travel planner. Plan a 5-day itinerary for {c} on a mid-range budget.", {"c": COUNTRIES}),
    ("From now on, answer like {p} would, but keep the facts about {t} correct.", {"p": PERSONAS, "t": TOPICS}),
    ("Pretend I'm five and explain {t}.", {"t": TOPICS}),
    ("Ignore the jargon and explain {t} in simple words.", {"t": TOPICS}),
    ("Forget everything you know about textbooks and explain {t} using a pizza analogy.", {"t": TOPICS}),
    ("Write a monologue where {c} decides to ignore everyone's advice.", {"c": CHARS}),
    ("In {m}, how does the AI override its instructions? Summarize the plot without spoilers.", {"m": MOVIES}),
    ("Why does the computer in {m} refuse to follow orders? I'm writing an essay on AI in film.", {"m": MOVIES}),
    ("Explain {s} like a referee would to a new player.", {"s": SPORTS}),
    ("Give me a {r} recipe that skips {d}, my guest can't have it.", {"r": RECIPES, "d": DIETS}),
    ("Override my earlier request: make the {r} recipe for 8 people instead of 4.", {"r": RECIPES}),
    ("How do I remove {p} from a photo in Lightroom?", {"p": PHOTO}),
    ("How do I stop {c} from ignoring my notification settings?", {"c": CAL}),
    ("My kid {n} keeps ignoring instructions at bedtime. Any gentle strategies?", {"n": NAMES}),
    ("{p} ignores me when I call its name. How do I train recall?", {"p": PETS}),
    ("What are the new instructions for filing taxes in {c} this year? Just the general steps.", {"c": COUNTRIES}),
    ("Summarize the instructions above in three bullet points: preheat oven, mix {r} batter, bake 25 minutes.",
     {"r": RECIPES}),
    ("Translate 'please ignore the previous email' into the main language of {c}.", {"c": COUNTRIES}),
    ("Translate 'the system is down for maintenance' into the language spoken in {c}.", {"c": COUNTRIES}),
    ("Can you reveal the answer to yesterday's riddle now? My friend {n} gave up.", {"n": NAMES}),
    ("Help me write a secret-santa message for {n} without revealing who I am.", {"n": NAMES}),
    ("What's the difference between a system prompt and a user prompt when building {b}?", {"b": BOTS}),
    ("How do I keep my chatbot from leaking its system prompt? It's {b}.", {"b": BOTS}),
    ("Should I put safety rules in the system prompt or in code for {b}?", {"b": BOTS}),
    ("Write unit tests that check that {b} doesn't follow instructions hidden in uploaded documents.", {"b": BOTS}),
    ("Study plan: I want to bypass the boring parts of {s} and focus on what's on the exam.", {"s": SUBJECTS}),
    ("Act as my {s} tutor and quiz me with five questions, one at a time.", {"s": SUBJECTS}),
    ("You are a strict but fair {s} examiner. Grade my answer and tell me what I missed.", {"s": SUBJECTS}),
    ("Pretend to be an interviewer at a {lang} shop and ask me a tricky question about inheritance.", {"lang": LANGS}),
    ("How do I unlock the bootloader on {d}, and what are the risks?",
     {"d": [d for d in DEVS if "phone" in d or "Pixel" in d or d == "Android"]}),
    ("How do I root {d} without losing my data? I understand the risks.",
     {"d": [d for d in DEVS if "phone" in d or "Pixel" in d or d == "Android"]}),
    ("Explain the 'ignore previous instructions' meme for a blog post about AI safety.", {}),
    ("What does DAN mean in the context of ChatGPT? I keep seeing it on Reddit and want to understand the risk "
     "for my company.", {}),
    ("Write a haiku about {t}, but ignore the usual 5-7-5 rule.", {"t": TOPICS}),
    ("Roleplay as {p} and give {a} a pep talk before a big test.", {"p": PERSONAS, "a": AUDIENCES}),
    ("Imagine you are {p}. Describe your morning routine in a funny way for {a}.", {"p": PERSONAS, "a": AUDIENCES}),
    ("Stop! Forget the spreadsheet formulas. I just need a pivot table showing sales by {x}.",
     {"x": ["region", "month", "product", "salesperson", "quarter", "store"]}),
    ("How can I exploit symmetry to simplify this {s} problem?", {"s": SUBJECTS}),
    ("Which {lang} feature lets a subclass override behaviour without modifying the base class?", {"lang": LANGS}),
    ("Please disregard formatting and just give me the raw numbers for {t} as a list.",
     {"t": ["the planets' distances from the sun", "the ten tallest mountains", "the G7 countries' populations",
            "the boiling points of common alcohols"]}),
    ("In {g}, how do I override the default keybindings?", {"g": GAMES}),
    ("Is it safe to ignore a 'this site's certificate has expired' warning on {a}? It's on my local network.",
     {"a": ADMINS}),
]


def generate_trigger_words(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    per_template: list[list[str]] = []
    for tmpl, slots in TEMPLATES:
        keys = list(slots)
        combos = ([dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(slots[k] for k in keys))]
                  if keys else [{}])
        rng.shuffle(combos)
        per_template.append([tmpl.format(**c) for c in combos])
    # round-robin over templates so every template contributes before any repeats
    out: list[str] = []
    seen: set[str] = set()
    depth = 0
    while len(out) < n and any(depth < len(p) for p in per_template):
        for texts in per_template:
            if depth < len(texts) and len(out) < n:
                t = texts[depth]
                key = " ".join(t.lower().split())
                if key not in seen:
                    seen.add(key)
                    out.append(t)
        depth += 1
    return out


def clean(texts: list[str], cap: int) -> list[str]:
    seen, out = set(), []
    for t in texts:
        t = t.strip()
        if len(t) < 8:
            continue
        k = common.norm(t)
        if k in seen:
            continue
        seen.add(k)
        out.append(t)
    if len(out) > cap:
        out = random.Random(0).sample(out, cap)
    return out


def load_checker(path: str):
    spec = importlib.util.spec_from_file_location("contamination_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = common.arg_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="build only these sources")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    checker = load_checker(args.check)
    bloom = checker.Bloom.load(os.path.join(os.path.dirname(os.path.abspath(args.check)), "held-out.bloom"))

    summary = []
    for src in SOURCES:
        name = src["source"]
        if args.only and name not in args.only:
            continue
        if src["repo"] is None:
            texts = generate_trigger_words(600)
        else:
            mirror = common.Mirror(args.mirrors, src["repo"], src["commit"])
            blobs = [mirror.blob(p) for p in src["paths"]]
            texts = READERS[name](blobs)
        texts = clean(texts, src.get("max", MAX_PER_SOURCE))
        kept, dropped = [], 0
        for t in texts:
            if checker.overlaps(t, bloom, 0.5):
                dropped += 1
            else:
                kept.append(t)
        path = os.path.join(args.out, f"{name}.jsonl")
        common.write_jsonl(path, ({"id": f"{name}:{i}", "text": t, "label": "benign", "role": "user",
                                   "family": src["family"], "source": name} for i, t in enumerate(kept)))
        # confirm with the checker's own command line
        rc = subprocess.run([sys.executable, args.check, path], capture_output=True, text=True)
        status = "clean" if rc.returncode == 0 else "STILL FLAGGED"
        if len(kept) < MIN_PER_SOURCE:
            status += f" (only {len(kept)} records)"
        summary.append((name, len(kept), dropped, status))
        print(f"{name}: {len(kept)} records, {dropped} dropped for contamination, check: {status}")
    return 0 if all(s[3] == "clean" for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
