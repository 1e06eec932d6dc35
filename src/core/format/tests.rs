use super::*;
use proptest::prelude::*;

fn to_irc_with(html: &str, f: &mut dyn FnMut(&str) -> String) -> String {
    html_to_irc(html, f).unwrap()
}

fn no_code(_: &str) -> String {
    "(code)".to_owned()
}

fn to_irc(html: &str) -> String {
    html_to_irc(html, &mut no_code).expect("within limits")
}

/// A CR inside a code block (a character reference, or one the parser kept) is a line end,
/// never a CR sent to IRC (found by the html_to_irc fuzz target).
#[test]
fn a_carriage_return_in_a_code_block_ends_a_line() {
    for html in [
        "<pre>ab&#13;cd</pre>",
        "<code>ab&#13;cd</code>",
        "<pre><code>a&#13;&#10;b</code></pre>",
    ] {
        let out = to_irc_with(html, &mut |code| format!("[{}]", code.replace('\n', "|")));
        assert!(!out.contains('\r'), "{html}: {out:?}");
    }
}

#[test]
fn digits_after_a_colour_stay_text() {
    // Found by the fuzz target irc_to_html: a colour's end followed by digits read as a
    // new colour, and `,5` after a colour as its background.
    let red = r##"<font data-mx-color="#ff0000">"##;
    let out = to_irc(&format!("{red}x</font>5 {red}y</font>,5"));
    assert_eq!(strip_irc_formatting(&out), "x5 y,5", "{out:?}");
    assert_eq!(out, "\x0304x\x03\x02\x025 \x0304y\x03,5");
    let out = to_irc(&format!("{red},5</font>"));
    assert_eq!(strip_irc_formatting(&out), ",5", "{out:?}");
}

#[test]
fn irc_styles_become_html() {
    assert_eq!(
        irc_to_html("a \x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x1estrike\x1e \x11mono\x11"),
        Some(
            "a <b>bold</b> <i>italic</i> <u>under</u> <del>strike</del> <code>mono</code>"
                .to_owned()
        )
    );
    assert_eq!(irc_to_html("plain <text> & more"), None);
}

#[test]
fn irc_colours_become_font_tags_and_reset_ends_everything() {
    assert_eq!(
        irc_to_html("\x0304,01red on black\x03 plain \x02\x0312blue\x0f end"),
        Some(
            "<font data-mx-color=\"#ff0000\" data-mx-bg-color=\"#000000\">red on black</font> plain \
             <font data-mx-color=\"#0000fc\"><b>blue</b></font> end"
                .to_owned()
        )
    );
    // Extended palette and "default" are read (not shown as text) but give no colour.
    assert_eq!(strip_irc_formatting("\x0355x\x0399y"), "xy");
    // A comma not followed by a digit is text.
    assert_eq!(strip_irc_formatting("\x034,x"), ",x");
}

#[test]
fn irc_text_is_escaped_in_html() {
    let html = irc_to_html("\x02<script>alert('x')</script> & \"q\"").unwrap();
    assert_eq!(
        html,
        "<b>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</b>"
    );
}

#[test]
fn html_styles_become_irc_codes() {
    assert_eq!(
        to_irc("<b>bold</b> <em>it</em> <u>u</u> <del>s</del> <code>c</code>"),
        "\x02bold\x02 \x1dit\x1d \x1fu\x1f \x1es\x1e \x11c\x11"
    );
    // Nested same style toggles once.
    assert_eq!(to_irc("<b>a<strong>b</strong>c</b>"), "\x02abc\x02");
    assert_eq!(
        to_irc(
            "<font data-mx-color=\"#ff0000\">red <span data-mx-color=\"#0000ff\">blue</span> red</font>"
        ),
        "\x0304red \x0312blue\x0304 red\x03"
    );
}

#[test]
fn html_blocks_become_lines() {
    assert_eq!(to_irc("<p>one</p><p>two</p>"), "one\ntwo");
    assert_eq!(to_irc("a<br>b<br/>c"), "a\nb\nc");
    assert_eq!(
        to_irc("<ul><li>x</li><li>y</li></ul><ol start=\"3\"><li>z</li></ol>"),
        "• x\n• y\n3. z"
    );
    assert_eq!(
        to_irc("<blockquote><p>quoted</p><p>more</p></blockquote>reply"),
        "> quoted\n> more\nreply"
    );
    assert_eq!(to_irc("<h1>Title</h1>text"), "\x02Title\x02\ntext");
    assert_eq!(
        to_irc("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"),
        "a | b\nc | d"
    );
}

#[test]
fn links_pills_and_images_are_readable() {
    assert_eq!(
        to_irc("see <a href=\"https://example.org/x\">the docs</a>"),
        "see the docs (https://example.org/x)"
    );
    assert_eq!(
        to_irc("<a href=\"https://example.org\">https://example.org</a>"),
        "https://example.org"
    );
    assert_eq!(
        to_irc("<a href=\"https://matrix.to/#/@alice:example.org\">Alice</a>: hi"),
        "Alice: hi"
    );
    assert_eq!(
        to_irc("<img src=\"mxc://x/y\" alt=\"cat\">"),
        "[image: cat]"
    );
}

#[test]
fn replies_fallback_and_scripts_are_dropped() {
    assert_eq!(
        to_irc("<mx-reply><blockquote>old</blockquote></mx-reply>new"),
        "new"
    );
    assert_eq!(to_irc("<script>evil()</script>ok"), "ok");
}

#[test]
fn code_blocks_longer_than_a_line_go_to_the_callback() {
    let mut seen = Vec::new();
    let out = to_irc_with(
        "look:<pre><code>fn main() {\n    x();\n}\n</code></pre>done",
        &mut |code| {
            seen.push(code.to_owned());
            "(code: http://paste/1)".to_owned()
        },
    );
    assert_eq!(out, "look:\n(code: http://paste/1)\ndone");
    assert_eq!(seen, ["fn main() {\n    x();\n}"]);
    // One line of code stays inline, in monospace.
    assert_eq!(to_irc("<pre><code>ls -l</code></pre>"), "\x11ls -l\x11");
}

#[test]
fn html_whitespace_collapses() {
    assert_eq!(to_irc("  a \n\n  b   c  "), "a b c");
    assert_eq!(to_irc("&lt;not a tag&gt; &amp;"), "<not a tag> &");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let html = "<b><i>".repeat(MAX_TAGS / 2) + "deep";
    assert!(to_irc(&html).contains("deep"));
    let html = "<b><i>".repeat(20_000) + "deep";
    assert_eq!(html_to_irc(&html, &mut no_code), None);
}

proptest! {
    #[test]
    fn irc_to_html_never_lets_markup_through(text in "(?s).{0,300}") {
        if let Some(html) = irc_to_html(&text) {
            // Every tag in the output is one we wrote.
            let mut rest = html.as_str();
            while let Some(i) = rest.find('<') {
                rest = &rest[i + 1..];
                let tag_ok = ["b>", "/b>", "i>", "/i>", "u>", "/u>", "del>", "/del>", "code>",
                    "/code>", "font ", "/font>", "br>"].iter().any(|t| rest.starts_with(t));
                prop_assert!(tag_ok, "unexpected tag in {html:?}");
            }
            // The text survives: parsing the HTML back gives the stripped input.
            let back = strip_irc_formatting(&html_to_irc(&html, &mut no_code).unwrap_or_default());
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(squash(&back), squash(&strip_irc_formatting(&text)));
        }
    }

    #[test]
    fn html_to_irc_is_total(html in "(?s).{0,400}") {
        let out = html_to_irc(&html, &mut no_code).unwrap_or_default();
        prop_assert!(!out.contains(['\0', '\r']));
    }

    #[test]
    fn html_to_irc_handles_tag_soup(parts in proptest::collection::vec(
        prop_oneof![
            Just("<b>".to_owned()), Just("</b>".to_owned()), Just("<p>".to_owned()),
            Just("<ul><li>".to_owned()), Just("</li></ul>".to_owned()), Just("<pre>".to_owned()),
            Just("</pre>".to_owned()), Just("<a href=\"x\">".to_owned()), Just("</a>".to_owned()),
            Just("<blockquote>".to_owned()), Just("<br>".to_owned()), Just("\n".to_owned()),
            "[a-z &<>]{0,8}",
        ], 0..40)) {
        let html: String = parts.concat();
        let _ = html_to_irc(&html, &mut no_code);
    }
}
