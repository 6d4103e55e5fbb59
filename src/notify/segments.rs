//! How many SMS segments a message body costs.
//!
//! Providers bill per segment, and a body that silently switches from GSM-7 to UCS-2
//! (one curly quote or emoji is enough) more than doubles the cost. [`measure`] answers
//! what the provider will do with a body, following 3GPP TS 23.038 (default alphabet
//! and its extension table) and the concatenation limits of TS 23.040:
//!
//! | encoding | single message | per segment when concatenated |
//! |----------|----------------|-------------------------------|
//! | GSM-7    | 160 septets    | 153 septets                   |
//! | UCS-2    | 70 code units  | 67 code units                 |
//!
//! Concatenated segments lose room to the user data header (UDH). A GSM-7 extension
//! character (escape + code) or a UTF-16 surrogate pair is never split across two
//! segments, so a segment may end a unit early; this is why the count is not always
//! `ceil(units / per_segment)`.

/// The character encoding a provider will use for a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 / 3GPP 23.038 default alphabet, 7 bits per character.
    Gsm7,
    /// UCS-2 (in practice UTF-16), 16 bits per code unit.
    Ucs2,
}

impl Encoding {
    /// Short name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units that fit in a message that is not split.
    pub fn single_limit(&self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units that fit in each segment of a concatenated message.
    pub fn segment_limit(&self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The size of one SMS body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    /// Encoding the whole body needs.
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    pub units: usize,
    /// Segments billed. An empty body counts as 1: it is still one message on the wire.
    pub segments: usize,
}

/// Characters of the GSM-7 default alphabet (3GPP TS 23.038, 6.2.1), in code order.
/// 0x1B is the escape to the extension table and not a character of its own, so it is
/// left out.
const GSM7_BASIC: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
);

/// Characters of the default extension table (3GPP TS 23.038, 6.2.1.1): each is sent as
/// escape + code, so it costs two septets.
const GSM7_EXTENSION: &str = "\u{0c}^{}\\[~]|€";

/// Septets `c` costs in GSM-7, or `None` if GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<usize> {
    if c == '\u{1b}' {
        // The escape code itself cannot be sent as text.
        None
    } else if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measures `body` as an SMS: the encoding a provider will pick (GSM-7 if every
/// character is in the default alphabet or its extension table, otherwise UCS-2 for the
/// whole message), its length in that encoding's units, and the segments it is billed
/// as. An empty body is 0 units and 1 segment.
pub fn measure(body: &str) -> SmsLength {
    // One pass to learn the per-character widths in the only encoding that fits.
    let gsm: Option<Vec<usize>> = body.chars().map(gsm7_septets).collect();
    let (encoding, widths) = match gsm {
        Some(widths) => (Encoding::Gsm7, widths),
        None => (
            Encoding::Ucs2,
            body.chars().map(char::len_utf16).collect::<Vec<_>>(),
        ),
    };
    let units = widths.iter().sum();
    let segments = if units <= encoding.single_limit() {
        1
    } else {
        pack(&widths, encoding.segment_limit())
    };
    SmsLength {
        encoding,
        units,
        segments,
    }
}

/// Segments needed when characters of the given widths are packed in order, none split
/// across a segment boundary.
fn pack(widths: &[usize], limit: usize) -> usize {
    let mut segments = 1;
    let mut used = 0;
    for &w in widths {
        if used + w > limit {
            segments += 1;
            used = 0;
        }
        used += w;
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(units: usize, segments: usize) -> SmsLength {
        SmsLength {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    }

    fn ucs(units: usize, segments: usize) -> SmsLength {
        SmsLength {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }

    #[test]
    fn lengths_follow_the_3gpp_limits() {
        let a = |n: usize| "a".repeat(n);
        let cases: Vec<(&str, String, SmsLength)> = vec![
            ("empty body", String::new(), gsm(0, 1)),
            ("one char", a(1), gsm(1, 1)),
            ("160 GSM chars", a(160), gsm(160, 1)),
            ("161 GSM chars", a(161), gsm(161, 2)),
            ("306 GSM chars", a(306), gsm(306, 2)),
            ("307 GSM chars", a(307), gsm(307, 3)),
            ("80 euro signs", "€".repeat(80), gsm(160, 1)),
            ("81 euro signs", "€".repeat(81), gsm(162, 2)),
            // 152 + 2 would overflow the first segment, so the pair moves whole to the
            // second: 152 | 2+151 | 1.
            (
                "extension pair at a segment boundary",
                format!("{}€{}", a(152), a(152)),
                gsm(306, 3),
            ),
            (
                "every extension char",
                "\u{0c}^{}\\[~]|€".to_string(),
                gsm(20, 1),
            ),
            ("70 UCS-2 units", format!("ä{}", "ж".repeat(69)), ucs(70, 1)),
            ("71 UCS-2 units", "ж".repeat(71), ucs(71, 2)),
            ("134 UCS-2 units", "ж".repeat(134), ucs(134, 2)),
            ("135 UCS-2 units", "ж".repeat(135), ucs(135, 3)),
            (
                "one emoji switches to UCS-2",
                format!("{}🎉", a(100)),
                ucs(102, 2),
            ),
            // 66 | 2+65 | 1: the surrogate pair is not split.
            (
                "surrogate pair at a segment boundary",
                format!("{}🎉{}", a(66), a(66)),
                ucs(134, 3),
            ),
            (
                "curly quotes are not GSM-7",
                "You\u{2019}ve got \u{201c}points\u{201d}".to_string(),
                ucs(19, 1),
            ),
            (
                "straight quotes are GSM-7",
                "You've got \"points\"".to_string(),
                gsm(19, 1),
            ),
            ("backtick is not GSM-7", "`".to_string(), ucs(1, 1)),
            ("escape code is not text", "\u{1b}".to_string(), ucs(1, 1)),
        ];
        for (name, body, want) in cases {
            assert_eq!(measure(&body), want, "{name}");
        }
    }

    #[test]
    fn the_whole_default_alphabet_is_one_septet_per_char() {
        let all: String = GSM7_BASIC.chars().filter(|&c| c != '\u{1b}').collect();
        assert_eq!(all.chars().count(), 127);
        assert_eq!(measure(&all), gsm(127, 1));
        let named = "£¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r @$";
        assert_eq!(measure(named).encoding, Encoding::Gsm7);
    }

    #[test]
    fn lowercase_c_cedilla_and_other_latin_accents_need_ucs2() {
        for s in ["ç", "ë", "á", "õ", "ß€ê"] {
            assert_eq!(measure(s).encoding, Encoding::Ucs2, "{s}");
        }
    }
}
