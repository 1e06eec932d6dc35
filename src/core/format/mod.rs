//! Formatting across the bridge: mIRC control codes <-> Matrix HTML (DESIGN §8).
//!
//! Both directions are pure and total: any input gives output, and the output is safe for
//! its side. HTML made from IRC text escapes every character that means something in HTML,
//! so IRC users cannot inject markup; IRC text made from HTML is read through a real HTML
//! parser (html5ever, through `ruma-html`) and holds no CR/LF/NUL/CTCP once the bridge's
//! splitter has cut it into lines. What IRC cannot show (lists, quotes, tables, images,
//! links whose text hides the address) is turned into readable plain text; code blocks
//! longer than one line are handed to a callback, which the bridge uses to make a paste.

pub mod irc_text;

use std::fmt::Write as _;

/// mIRC control codes.
pub mod code {
    pub const BOLD: char = '\x02';
    pub const COLOR: char = '\x03';
    pub const HEX_COLOR: char = '\x04';
    pub const RESET: char = '\x0f';
    pub const MONOSPACE: char = '\x11';
    pub const REVERSE: char = '\x16';
    pub const ITALIC: char = '\x1d';
    pub const STRIKE: char = '\x1e';
    pub const UNDERLINE: char = '\x1f';
}

/// The 16 standard mIRC colours, as Matrix `data-mx-color` values. Codes 16-98 (the extended
/// palette) are read but not shown; 99 means "default colour".
const PALETTE: [&str; 16] = [
    "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
    "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
];

/// Escapes text for HTML, in element content and in quoted attributes alike: the one
/// escaper for chat messages, minutes and the web site.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    mono: bool,
    fg: Option<u8>,
    bg: Option<u8>,
}

impl Style {
    fn is_plain(&self) -> bool {
        *self == Style::default()
    }
}

/// Reads up to two ASCII digits at the start of `s` as a colour number.
fn take_color(s: &str) -> (Option<u8>, usize) {
    let digits = s.bytes().take(2).take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, 0);
    }
    (s[..digits].parse().ok(), digits)
}

/// Splits mIRC text into runs of equally styled text.
fn irc_runs(text: &str) -> Vec<(Style, String)> {
    let mut runs: Vec<(Style, String)> = Vec::new();
    let mut style = Style::default();
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().expect("in bounds");
        i += c.len_utf8();
        match c {
            code::BOLD => style.bold = !style.bold,
            code::ITALIC => style.italic = !style.italic,
            code::UNDERLINE => style.underline = !style.underline,
            code::STRIKE => style.strike = !style.strike,
            code::MONOSPACE => style.mono = !style.mono,
            code::REVERSE => {}
            code::RESET => style = Style::default(),
            code::COLOR => {
                let (fg, n) = take_color(&text[i..]);
                i += n;
                if n == 0 {
                    // A bare \x03 ends colouring.
                    style.fg = None;
                    style.bg = None;
                    continue;
                }
                style.fg = fg;
                if text[i..].starts_with(',') {
                    let (bg, m) = take_color(&text[i + 1..]);
                    if m > 0 {
                        i += 1 + m;
                        style.bg = bg;
                    }
                }
            }
            code::HEX_COLOR => {
                // \x04RRGGBB[,RRGGBB]: rare; read and ignored.
                let hex =
                    |s: &str| s.len() >= 6 && s.bytes().take(6).all(|b| b.is_ascii_hexdigit());
                if hex(&text[i..]) {
                    i += 6;
                    if text[i..].starts_with(',') && hex(&text[i + 1..]) {
                        i += 7;
                    }
                }
            }
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => match runs.last_mut() {
                Some((s, t)) if *s == style => t.push(c),
                _ => runs.push((style, c.to_string())),
            },
        }
    }
    runs
}

/// IRC text without its formatting codes (and without other control characters but LF/TAB).
pub fn strip_irc_formatting(text: &str) -> String {
    irc_runs(text).into_iter().map(|(_, t)| t).collect()
}

fn color_name(n: Option<u8>) -> Option<&'static str> {
    n.and_then(|n| PALETTE.get(usize::from(n)).copied())
}

/// Renders mIRC text as Matrix HTML; `None` when it carries no formatting (plain text says
/// it all). Line breaks become `<br>`.
pub fn irc_to_html(text: &str) -> Option<String> {
    let runs = irc_runs(text);
    if runs.iter().all(|(s, _)| s.is_plain()) {
        return None;
    }
    let mut html = String::new();
    for (s, t) in runs {
        let mut close: Vec<&str> = Vec::new();
        let fg = color_name(s.fg);
        let bg = color_name(s.bg);
        if fg.is_some() || bg.is_some() {
            html.push_str("<font");
            if let Some(c) = fg {
                let _ = write!(html, " data-mx-color=\"{c}\"");
            }
            if let Some(c) = bg {
                let _ = write!(html, " data-mx-bg-color=\"{c}\"");
            }
            html.push('>');
            close.push("</font>");
        }
        for (on, open, end) in [
            (s.bold, "<b>", "</b>"),
            (s.italic, "<i>", "</i>"),
            (s.underline, "<u>", "</u>"),
            (s.strike, "<del>", "</del>"),
            (s.mono, "<code>", "</code>"),
        ] {
            if on {
                html.push_str(open);
                close.push(end);
            }
        }
        html.push_str(&escape_html(&t).replace('\n', "<br>"));
        for end in close.into_iter().rev() {
            html.push_str(end);
        }
    }
    Some(html)
}

/// Plain text rendered as HTML: escaped, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    escape_html(text).replace('\n', "<br>")
}

// ---------------------------------------------------------------------------------------
// HTML -> IRC

/// The nearest of the 16 standard colours to `#rrggbb`.
fn nearest_color(css: &str) -> Option<u8> {
    let hex = css.trim().strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rgb = |s: &str| u8::from_str_radix(s, 16).map(i32::from).ok();
    let (r, g, b) = (rgb(&hex[0..2])?, rgb(&hex[2..4])?, rgb(&hex[4..6])?);
    PALETTE
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| {
            let (pr, pg, pb) = (
                rgb(&p[1..3]).unwrap_or(0),
                rgb(&p[3..5]).unwrap_or(0),
                rgb(&p[5..7]).unwrap_or(0),
            );
            (r - pr).pow(2) + (g - pg).pow(2) + (b - pb).pow(2)
        })
        .and_then(|(i, _)| u8::try_from(i).ok())
}

/// Builds IRC text while walking the HTML tree.
struct IrcWriter {
    out: String,
    /// Open counts per style, so nested `<b><b>` toggles once.
    depth: [u32; 5],
    colors: Vec<u8>,
    /// Inside `<pre>`: whitespace kept.
    pre: u32,
    /// Prefix of every new line (blockquote `> `, list indentation).
    line_prefix: Vec<String>,
    at_line_start: bool,
    pending_space: bool,
}

const STYLE_CODES: [char; 5] = [
    code::BOLD,
    code::ITALIC,
    code::UNDERLINE,
    code::STRIKE,
    code::MONOSPACE,
];

impl IrcWriter {
    fn new() -> Self {
        Self {
            out: String::new(),
            depth: [0; 5],
            colors: Vec::new(),
            pre: 0,
            line_prefix: Vec::new(),
            at_line_start: true,
            pending_space: false,
        }
    }

    /// A space before an opening code belongs before it, not inside the styled text.
    fn flush_space(&mut self) {
        if self.pending_space && !self.at_line_start {
            self.out.push(' ');
            self.pending_space = false;
        }
    }

    fn style(&mut self, which: usize, on: bool) {
        if on {
            self.flush_space();
        }
        let d = &mut self.depth[which];
        if on {
            *d += 1;
            if *d == 1 {
                self.out.push(STYLE_CODES[which]);
            }
        } else if *d > 0 {
            *d -= 1;
            if *d == 0 {
                self.out.push(STYLE_CODES[which]);
            }
        }
    }

    fn push_color(&mut self, c: u8) {
        self.flush_space();
        self.colors.push(c);
        let _ = write!(self.out, "{}{c:02}", code::COLOR);
    }

    fn pop_color(&mut self) {
        self.colors.pop();
        self.out.push(code::COLOR);
        if let Some(c) = self.colors.last() {
            let _ = write!(self.out, "{c:02}");
        }
    }

    fn start_line(&mut self) {
        if self.at_line_start {
            self.at_line_start = false;
            for p in self.line_prefix.clone() {
                self.push_text(&p);
            }
        }
    }

    /// Appends text. A colour code takes the digits after it (`\x03` up to two, `\x03NN`
    /// then `,` and two more): text that would extend the code it follows is kept apart by
    /// two bold toggles, which show nothing.
    fn push_text(&mut self, t: &str) {
        if extends_color_code(&self.out, t) {
            self.out.push(code::BOLD);
            self.out.push(code::BOLD);
        }
        self.out.push_str(t);
    }

    fn newline(&mut self) {
        if !self.out.is_empty() || !self.line_prefix.is_empty() {
            self.out.push('\n');
        }
        self.at_line_start = true;
        self.pending_space = false;
    }

    /// Ends the current line unless it is empty: block elements start on their own line.
    fn block_break(&mut self) {
        if !self.at_line_start {
            self.newline();
        }
    }

    fn text(&mut self, t: &str) {
        if self.pre > 0 {
            // A CR is a line end too: kept, it would end an IRC line of its own.
            let t = t.replace("\r\n", "\n");
            for (i, part) in t.split(['\n', '\r']).enumerate() {
                if i > 0 {
                    self.newline();
                }
                if !part.is_empty() {
                    self.start_line();
                    self.push_text(part);
                }
            }
            return;
        }
        for (i, word) in t.split(char::is_whitespace).enumerate() {
            if i > 0 {
                self.pending_space = true;
            }
            if word.is_empty() {
                continue;
            }
            if self.pending_space && !self.at_line_start {
                self.out.push(' ');
            }
            self.pending_space = false;
            self.start_line();
            self.push_text(word);
        }
    }
}

/// Whether `next`, written after `out`, would be read as part of the colour code that `out`
/// ends with (see [`take_color`] in `irc_runs`).
fn extends_color_code(out: &str, next: &str) -> bool {
    let Some(at) = out.rfind(code::COLOR) else {
        return false;
    };
    let tail = &out.as_bytes()[at + code::COLOR.len_utf8()..];
    let next = next.as_bytes();
    let digit = |b: Option<&u8>| b.is_some_and(u8::is_ascii_digit);
    match tail {
        [] => digit(next.first()),
        [a] if a.is_ascii_digit() => {
            digit(next.first()) || (next.first() == Some(&b',') && digit(next.get(1)))
        }
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            next.first() == Some(&b',') && digit(next.get(1))
        }
        [a, b, b','] if a.is_ascii_digit() && b.is_ascii_digit() => digit(next.first()),
        [a, b, b',', c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            digit(next.first())
        }
        _ => false,
    }
}

fn attr(el: &ruma_html::ElementData, name: &str) -> Option<String> {
    el.attrs
        .borrow()
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.to_string())
}

/// The text inside a node, whitespace kept (for `<pre>` blocks).
fn text_content(node: &ruma_html::NodeRef) -> String {
    let mut out = String::new();
    let mut stack = vec![node.clone()];
    while let Some(n) = stack.pop() {
        if let Some(t) = n.as_text() {
            out.push_str(&t.borrow());
        }
        let mut kids: Vec<_> = n.children().collect();
        kids.reverse();
        stack.extend(kids);
    }
    out
}

enum Step {
    Enter(ruma_html::NodeRef),
    Exit(Vec<Undo>),
}

/// What leaving an element must undo.
enum Undo {
    Style(usize),
    Color,
    Prefix,
    Block,
    List,
    Text(String),
}

/// The most tags [`html_to_irc`] reads. The parsed tree is freed recursively (inside
/// `ruma-html`), so a message nested thousands deep could exhaust a thread's stack; real
/// messages stay far below this, and the plain body is shown for the others.
pub const MAX_TAGS: usize = 1000;

/// Renders Matrix HTML as IRC text with mIRC codes; `None` when the HTML has more than
/// [`MAX_TAGS`] tags (then show the plain body). Multi-line code blocks are given to
/// `long_code`, whose answer (a short reference, e.g. a paste link) stands in their place.
pub fn html_to_irc(html: &str, long_code: &mut dyn FnMut(&str) -> String) -> Option<String> {
    if html.bytes().filter(|b| *b == b'<').count() > MAX_TAGS {
        return None;
    }
    Some(html_tree_to_irc(html, long_code))
}

fn html_tree_to_irc(html: &str, long_code: &mut dyn FnMut(&str) -> String) -> String {
    let doc = ruma_html::Html::parse(html);
    let mut walk = HtmlToIrc {
        w: IrcWriter::new(),
        counters: Vec::new(),
        long_code,
    };
    let top: Vec<_> = doc.children().collect();
    let mut stack: Vec<Step> = top.into_iter().rev().map(Step::Enter).collect();
    while let Some(step) = stack.pop() {
        let node = match step {
            Step::Exit(undo) => {
                walk.close(undo);
                continue;
            }
            Step::Enter(node) => node,
        };
        if let Some(t) = node.as_text() {
            let t = t.borrow().to_string();
            walk.w.text(&t);
            continue;
        }
        let Some(el) = node.as_element() else {
            continue;
        };
        let mut undo = Vec::new();
        let descend = walk.open(&node, el, &mut undo);
        stack.push(Step::Exit(undo));
        if descend {
            let kids: Vec<_> = node.children().collect();
            stack.extend(kids.into_iter().rev().map(Step::Enter));
        }
    }
    finish_irc(&walk.w.out)
}

/// The walk over a Matrix HTML tree: the IRC text so far, and what open elements need.
struct HtmlToIrc<'a> {
    w: IrcWriter,
    /// Ordered-list counters, innermost last.
    counters: Vec<Option<u32>>,
    long_code: &'a mut dyn FnMut(&str) -> String,
}

impl HtmlToIrc<'_> {
    /// Writes what an element starts with, and pushes onto `undo` what its end must undo;
    /// returns whether its children are to be written.
    fn open(
        &mut self,
        node: &ruma_html::NodeRef,
        el: &ruma_html::ElementData,
        undo: &mut Vec<Undo>,
    ) -> bool {
        match &*el.name.local {
            "mx-reply" | "script" | "style" | "head" | "title" => false,
            "b" | "strong" => self.styled(0, undo),
            "i" | "em" | "cite" => self.styled(1, undo),
            "u" | "ins" => self.styled(2, undo),
            "del" | "s" | "strike" => self.styled(3, undo),
            "code" => self.styled(4, undo),
            "font" | "span" => self.font(el, undo),
            "br" => self.line_break(),
            "hr" => self.rule(),
            "pre" => self.code_block(node),
            "p" | "div" | "section" | "article" | "table" | "details" | "summary" | "dl" | "dt"
            | "dd" | "tr" => self.block(undo),
            "td" | "th" => self.cell(node),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.heading(undo),
            "blockquote" => self.quote(undo),
            "ul" => self.list(el, false, undo),
            "ol" => self.list(el, true, undo),
            "li" => self.list_item(undo),
            "a" => self.link(node, el, undo),
            "img" => self.image(el),
            _ => true,
        }
    }

    /// Undoes, innermost first, what an element's start did.
    fn close(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Style(i) => self.w.style(i, false),
                Undo::Color => self.w.pop_color(),
                Undo::Prefix => {
                    self.w.line_prefix.pop();
                }
                Undo::Block => self.w.block_break(),
                Undo::List => {
                    self.counters.pop();
                }
                Undo::Text(t) => self.w.text(&t),
            }
        }
    }

    fn styled(&mut self, style: usize, undo: &mut Vec<Undo>) -> bool {
        self.w.style(style, true);
        undo.push(Undo::Style(style));
        true
    }

    /// A colour (the nearest mIRC one), or a spoiler, which is not shown.
    fn font(&mut self, el: &ruma_html::ElementData, undo: &mut Vec<Undo>) -> bool {
        let c = attr(el, "data-mx-color")
            .or_else(|| attr(el, "color"))
            .and_then(|c| nearest_color(&c));
        if let Some(c) = c {
            self.w.push_color(c);
            undo.push(Undo::Color);
        }
        if attr(el, "data-mx-spoiler").is_some() {
            self.w.text("[spoiler]");
            return false;
        }
        true
    }

    fn line_break(&mut self) -> bool {
        self.w.newline();
        false
    }

    fn rule(&mut self) -> bool {
        self.w.block_break();
        self.w.text("----");
        self.w.newline();
        false
    }

    /// One line of code in monospace; longer code goes to `long_code`, and its answer
    /// stands in its place.
    fn code_block(&mut self, node: &ruma_html::NodeRef) -> bool {
        let code = text_content(node).replace("\r\n", "\n").replace('\r', "\n");
        let code = code.trim_end_matches('\n');
        self.w.block_break();
        if code.contains('\n') {
            let reference = (self.long_code)(code);
            self.w.text(&reference);
        } else {
            self.w.style(4, true);
            self.w.pre += 1;
            self.w.text(code);
            self.w.pre -= 1;
            self.w.style(4, false);
        }
        self.w.newline();
        false
    }

    fn block(&mut self, undo: &mut Vec<Undo>) -> bool {
        self.w.block_break();
        undo.push(Undo::Block);
        true
    }

    /// Table cells after the first of their row are set off by ` | `.
    fn cell(&mut self, node: &ruma_html::NodeRef) -> bool {
        if node.prev_sibling().is_some() {
            self.w.text(" | ");
        }
        true
    }

    fn heading(&mut self, undo: &mut Vec<Undo>) -> bool {
        self.w.block_break();
        self.w.style(0, true);
        undo.push(Undo::Block);
        undo.push(Undo::Style(0));
        true
    }

    fn quote(&mut self, undo: &mut Vec<Undo>) -> bool {
        self.w.block_break();
        self.w.line_prefix.push("> ".to_owned());
        undo.push(Undo::Block);
        undo.push(Undo::Prefix);
        true
    }

    fn list(&mut self, el: &ruma_html::ElementData, ordered: bool, undo: &mut Vec<Undo>) -> bool {
        self.w.block_break();
        let start = attr(el, "start").and_then(|s| s.parse().ok()).unwrap_or(1);
        self.counters.push(ordered.then_some(start));
        undo.push(Undo::Block);
        undo.push(Undo::List);
        true
    }

    /// A list item on its own line: indented by the list's depth, numbered or bulleted.
    fn list_item(&mut self, undo: &mut Vec<Undo>) -> bool {
        self.w.block_break();
        let bullet = match self.counters.last_mut() {
            Some(Some(n)) => {
                let b = format!("{n}. ");
                *n += 1;
                b
            }
            _ => "• ".to_owned(),
        };
        let indent = "  ".repeat(self.counters.len().saturating_sub(1));
        self.w.start_line();
        self.w.out.push_str(&indent);
        self.w.out.push_str(&bullet);
        self.w.pending_space = false;
        undo.push(Undo::Block);
        true
    }

    /// A link's text, then its address in parentheses when the text does not show it.
    fn link(
        &mut self,
        node: &ruma_html::NodeRef,
        el: &ruma_html::ElementData,
        undo: &mut Vec<Undo>,
    ) -> bool {
        let href = attr(el, "href").unwrap_or_default();
        let shown = text_content(node);
        let shown = shown.trim();
        // Pills (matrix.to links to users and rooms) show their text: a display name.
        let is_pill = href.starts_with("https://matrix.to/#/");
        if !href.is_empty() && !is_pill && shown != href && !shown.is_empty() {
            undo.push(Undo::Text(format!(" ({href})")));
        } else if shown.is_empty() && !href.is_empty() {
            self.w.text(&href);
        }
        true
    }

    fn image(&mut self, el: &ruma_html::ElementData) -> bool {
        let alt = attr(el, "alt").or_else(|| attr(el, "title"));
        match alt {
            Some(a) if !a.trim().is_empty() => self.w.text(&format!("[image: {}]", a.trim())),
            _ => self.w.text("[image]"),
        }
        false
    }
}

/// Trims every line's end and drops blank lines at the start and end, and runs of them.
fn finish_irc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.split('\n') {
        let line = line.trim_end();
        if strip_irc_formatting(line).trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests;
