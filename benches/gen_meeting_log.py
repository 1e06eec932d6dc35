#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Writes a synthetic raw meeting log in MeetBot's format, for the meetings benchmark.

usage: gen_meeting_log.py N_LINES OUTFILE [--seed S]

Every line is "HH:MM:SS <nick> text", or "HH:MM:SS * nick text" for an emote. The log opens
with #startmeeting, #meetingname and #chair and closes with #endmeeting. Its body, per 10,000
lines and scaled with N_LINES, holds about 40 #topic, 300 #info, 150 #action naming one or two
attendees, 60 #agreed, 100 #link, 150 chat lines with a URL inside, 30 lines that are only a
URL, 100 emotes, and chat for the rest, some of it with characters HTML must escape. The same
seed always gives the same file.
"""

import argparse
import random

PEOPLE = ["amaya", "bjorn", "chidi", "dolores", "eun-ji", "farid", "greta",
          "hiro", "ines", "jomo", "kasia", "lev_2"]
CHAIRS = PEOPLE[:4]

VOCABULARY = """
agenda minutes release branch mirror compose rebuild package spec tarball signing key rotate
kernel module firmware container image registry quay tag promote testing stable candidate
review approve merge revert backport patch upstream downstream bug ticket tracker milestone
owner volunteer deadline sprint week tomorrow friday vote consensus quorum proposal draft
wiki page docs website blog newsletter survey results dashboard graph latency throughput
storage network cluster node reboot outage incident postmortem alert monitoring oncall
mailing list forum chat bridge matrix irc meeting chair topic action info link thanks
yes no maybe soon later done blocked waiting ok sure agreed +1 -1 fine
""".split()

# Text that must come out escaped in HTML minutes and logs.
AWKWARD = ["<i>", "</div>", "a<b", "b>c", "x && y", "R&D", '"quoted"', "don't",
           "<img src=x onerror=alert(1)>", "&lt;already&gt;", "->", "<<EOF"]

HOSTS = ["git.example.org", "bugs.example.org", "wiki.example.org", "ci.example.net",
         "docs.example.com", "lists.example.org"]


class Writer:
    def __init__(self, rng):
        self.rng = rng

    def phrase(self, low, high):
        """Words up to a length drawn between low and high characters."""
        want = self.rng.randint(low, high)
        text = ""
        while len(text) < want:
            text = (text + " " + self.rng.choice(VOCABULARY)).strip()
        return text[:want].rstrip() if want else ""

    def link(self):
        path = "/".join(self.rng.choice(VOCABULARY).strip("+-") or "p"
                        for _ in range(self.rng.randint(1, 3)))
        url = "https://%s/%s" % (self.rng.choice(HOSTS), path)
        if self.rng.random() < 0.25:
            url += "?page=%d&sort=%s" % (self.rng.randint(1, 500), self.rng.choice(["new", "old"]))
        return url

    def chatter(self, awkward_share=0.15):
        """A chat line of 40 to 200 characters that no meeting command would take for its own."""
        text = self.phrase(40, 200)
        if self.rng.random() < awkward_share:
            words = text.split(" ")
            words.insert(self.rng.randint(0, len(words)), self.rng.choice(AWKWARD))
            text = " ".join(words)
        if self.rng.random() < 0.2:
            text = "%s, %s" % (self.rng.choice(PEOPLE), text)
        text = text.lstrip("#* ")[:200].rstrip()
        while len(text) < 40:
            text = (text + " " + self.rng.choice(VOCABULARY)).strip()
        return text


def body_kinds(total, rng):
    """The kinds of the body's lines, shuffled, with a #topic first."""
    scale = total / 10000.0
    wanted = [("topic", 40), ("info", 300), ("action", 150), ("agreed", 60), ("link", 100),
              ("url_in_chat", 150), ("bare_url", 30), ("emote", 100)]
    kinds = []
    for kind, per_10k in wanted:
        count = int(round(per_10k * scale))
        # The first body line is a topic, so that no item lands before one.
        kinds.extend([kind] * (max(count, 1) if kind == "topic" else count))
    kinds.extend(["chat"] * (total - len(kinds)))
    kinds.remove("topic")
    rng.shuffle(kinds)
    return ["topic"] + kinds


def line_for(kind, number, w, rng):
    """(speaker, text, is_emote) for one body line."""
    if kind == "topic":
        return rng.choice(CHAIRS), "#topic %d. %s" % (number, w.phrase(15, 60)), False
    if kind == "info":
        return rng.choice(PEOPLE), "#info " + w.chatter(0.2), False
    if kind == "action":
        names = rng.sample(PEOPLE, 2 if rng.random() < 0.33 else 1)
        return rng.choice(PEOPLE), "#action %s will %s" % (" and ".join(names), w.phrase(20, 120)), False
    if kind == "agreed":
        return rng.choice(CHAIRS), "#agreed " + w.chatter(0.2), False
    if kind == "link":
        return rng.choice(PEOPLE), ("#link %s %s" % (w.link(), w.phrase(0, 60))).rstrip(), False
    if kind == "url_in_chat":
        return rng.choice(PEOPLE), "%s: %s" % (w.phrase(10, 80), w.link()), False
    if kind == "bare_url":
        return rng.choice(PEOPLE), w.link(), False
    if kind == "emote":
        return rng.choice(PEOPLE), w.phrase(10, 80), True
    return rng.choice(PEOPLE), w.chatter(), False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    w = Writer(rng)

    opening = [(CHAIRS[0], "#startmeeting Synthetic planning meeting", False),
               (CHAIRS[0], "#meetingname synthetic", False),
               (CHAIRS[0], "#chair " + " ".join(CHAIRS[1:]), False)]
    closing = [(CHAIRS[0], "#endmeeting", False)]
    body = []
    topics = 0
    for kind in body_kinds(args.lines - len(opening) - len(closing), rng):
        topics += kind == "topic"
        body.append(line_for(kind, topics, w, rng))
    lines = opening + body + closing
    assert len(lines) == args.lines, (len(lines), args.lines)

    seconds = 12 * 3600
    with open(args.out, "w", encoding="utf-8") as out:
        for speaker, text, emote in lines:
            seconds += rng.choice((0, 1, 1, 2, 3, 4, 6, 9))
            stamp = "%02d:%02d:%02d" % (seconds // 3600 % 24, seconds // 60 % 60, seconds % 60)
            if emote:
                out.write("%s * %s %s\n" % (stamp, speaker, text))
            else:
                out.write("%s <%s> %s\n" % (stamp, speaker, text))


if __name__ == "__main__":
    main()
