#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Minutes by the MeetBot peer, for benches/peers.sh: replays a raw meeting log written by
gen_meeting_log.py through hcoop-meetbot's Limnoria-independent logic (hcoopmeetbotlogic, the
maintained descendant of MeetBot), the way its Limnoria plugin feeds it channel lines, so that
#endmeeting writes its raw log, formatted log and minutes (HTML) into OUTDIR.

usage: meetbot_peer.py LOG OUTDIR

Run it with the benchmark venv's python (peers.sh installs hcoop-meetbot there from PyPI).
It prints the seconds spent inside the process, from reading the log to the files written.
"""

import logging
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) (?:<([^>]+)>|\* (\S+)) ?(.*)$")


def main() -> None:
    log, outdir = sys.argv[1], Path(sys.argv[2])
    start = time.perf_counter()
    # Imported after the clock starts: loading the package is part of the peer's work.
    from hcoopmeetbotlogic import handler
    from hcoopmeetbotlogic.interface import Context, Message

    outdir.mkdir(parents=True, exist_ok=True)
    conf = outdir / "HcoopMeetbot.conf"
    conf.write_text(f"[HcoopMeetbot]\nlogDir = {outdir}\npattern = {{name}}\n", encoding="utf-8")
    logger = logging.getLogger("meetbot-peer")
    logger.setLevel(logging.WARNING)
    handler.configure(logger, str(conf))
    replies = []
    context = Context(
        get_topic=lambda: "",
        set_topic=lambda _t: None,
        send_reply=replies.append,
        send_message=replies.append,
    )
    day = datetime(2026, 1, 5, tzinfo=timezone.utc)
    lines = 0
    with open(log, encoding="utf-8") as f:
        for n, raw in enumerate(f):
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            hh, mm, ss, nick, emote_nick, text = m.groups()
            if emote_nick:
                nick, text = emote_nick, f"\x01ACTION {text}\x01"
            message = Message(
                id=str(n),
                timestamp=day.replace(hour=int(hh), minute=int(mm), second=int(ss)),
                nick=nick,
                channel="#meeting",
                network="bench",
                payload=text,
            )
            handler.irc_message(context, message)
            lines += 1
    written = sorted(p.name for p in outdir.rglob("*") if p.is_file() and p != conf)
    elapsed = time.perf_counter() - start
    if not any(name.endswith(".html") for name in written):
        sys.exit(f"meetbot_peer: no minutes written for {lines} lines; replies: {replies[-3:]}")
    print(f"{elapsed:.4f}")


if __name__ == "__main__":
    main()
