//! Terminal escape sequences out of log lines.

/// `line` without its ANSI escape sequences: CSI (`ESC [ ... final`, the
/// colours and styles of a log line), OSC (`ESC ] ... BEL` or `ESC ] ...
/// ESC \`) and two-character escapes (`ESC c`). A lone ESC at the end is
/// dropped.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // Parameters and intermediates, then one final byte in @..=~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Up to BEL or ST (ESC \).
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) | None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn colours_of_a_tracing_line_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening on 127.0.0.1:1"),
            "2024  INFO listening on 127.0.0.1:1"
        );
    }

    #[test]
    fn other_sequences_are_stripped_and_plain_text_is_kept() {
        assert_eq!(strip_ansi("\r\u{1b}[2K  warming up"), "\r  warming up");
        assert_eq!(
            strip_ansi("a\u{1b}]0;title\u{7}b\u{1b}]8;;x\u{1b}\\c"),
            "abc"
        );
        assert_eq!(strip_ansi("x\u{1b}cy\u{1b}"), "xy");
        assert_eq!(strip_ansi("plain [text] é"), "plain [text] é");
    }
}
