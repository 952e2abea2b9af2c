//! Warnings for free text that looks like it holds personal data.
//!
//! Notes must never hold a phone number, e-mail address, national id or a
//! full name (`intake-model.md`, "Never stored"). This is a heuristic
//! scan, not a guarantee: it warns the officer before the text is saved
//! so they can rewrite it. It understands Arabic-Indic and Persian digits
//! and common Arabic phrasings that introduce a name.

use serde::Serialize;

/// What a piece of text seems to contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiWarning {
    /// A phone number (7 to 11 digits, or an Iraqi +964 / 07 number).
    PhoneNumber,
    /// An e-mail address.
    Email,
    /// A long digit string such as a national id card number (12+ digits).
    NationalId,
    /// A phrase that introduces a person's name.
    FullName,
    /// A social-media handle (@name).
    Handle,
}

impl PiiWarning {
    /// What to tell the officer, in English and Arabic.
    pub fn message(self, lang: super::Lang) -> &'static str {
        use super::Lang::*;
        match (self, lang) {
            (PiiWarning::PhoneNumber, En) => "looks like a phone number: remove it",
            (PiiWarning::PhoneNumber, Ar) => "يبدو أنه رقم هاتف: احذفه",
            (PiiWarning::Email, En) => "looks like an e-mail address: remove it",
            (PiiWarning::Email, Ar) => "يبدو أنه بريد إلكتروني: احذفه",
            (PiiWarning::NationalId, En) => "looks like an id number: remove it",
            (PiiWarning::NationalId, Ar) => "يبدو أنه رقم هوية: احذفه",
            (PiiWarning::FullName, En) => "seems to name a person: use codes, not names",
            (PiiWarning::FullName, Ar) => "يبدو أنه يذكر اسم شخص: استخدم الرموز لا الأسماء",
            (PiiWarning::Handle, En) => "looks like an account handle: keep it only in evidence",
            (PiiWarning::Handle, Ar) => "يبدو أنه اسم حساب: احتفظ به في الأدلة فقط",
        }
    }
}

/// Words that usually introduce a name, in English and Arabic.
const NAME_MARKERS: &[&str] = &[
    "name is",
    "named",
    "called",
    "her name",
    "his name",
    "اسمها",
    "اسمه",
    "اسمي",
    "تدعى",
    "يدعى",
    "المدعو",
    "المدعوة",
];

/// Scans `text` and returns each kind of warning once, in a fixed order.
pub fn scan(text: &str) -> Vec<PiiWarning> {
    let mut found = Vec::new();
    let mut add = |w| {
        if !found.contains(&w) {
            found.push(w);
        }
    };
    for run in digit_runs(text) {
        if run.len() >= 12 && !run.starts_with("964") && !run.starts_with("07") {
            add(PiiWarning::NationalId);
        } else if run.len() >= 7 {
            add(PiiWarning::PhoneNumber);
        }
    }
    for word in text.split_whitespace() {
        let word = word.trim_matches(|c: char| c.is_ascii_punctuation() && c != '@');
        if let Some(at) = word.find('@') {
            let (local, domain) = word.split_at(at);
            if !local.is_empty() && domain[1..].contains('.') {
                add(PiiWarning::Email);
            } else if local.is_empty() && word.chars().count() > 2 {
                add(PiiWarning::Handle);
            }
        }
    }
    let lower = text.to_lowercase();
    if NAME_MARKERS.iter().any(|m| contains_word(&lower, m)) {
        add(PiiWarning::FullName);
    }
    found
}

/// Runs of digits (ASCII, Arabic-Indic or Persian), allowing the spaces,
/// dashes, dots and a leading plus that people put inside phone numbers.
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    let mut pending_separator = false;
    for c in text.chars() {
        if let Some(d) = ascii_digit(c) {
            current.push(d);
            pending_separator = false;
        } else if !current.is_empty() && matches!(c, ' ' | '-' | '.' | '/') && !pending_separator {
            pending_separator = true;
        } else if current.is_empty() && c == '+' {
            continue;
        } else {
            if !current.is_empty() {
                runs.push(std::mem::take(&mut current));
            }
            pending_separator = false;
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '\u{0660}'..='\u{0669}' => char::from_digit(c as u32 - 0x0660, 10),
        '\u{06F0}'..='\u{06F9}' => char::from_digit(c as u32 - 0x06F0, 10),
        _ => None,
    }
}

/// Whether `marker` occurs in `text` at word boundaries.
fn contains_word(text: &str, marker: &str) -> bool {
    text.match_indices(marker).any(|(at, m)| {
        let before = text[..at].chars().next_back();
        let after = text[at + m.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_phone_numbers_in_any_digits() {
        assert_eq!(
            scan("call 0770 123 4567 tomorrow"),
            vec![PiiWarning::PhoneNumber]
        );
        assert_eq!(scan("رقمه ٠٧٧٠١٢٣٤٥٦٧"), vec![PiiWarning::PhoneNumber]);
        assert_eq!(scan("+964 770 123 4567"), vec![PiiWarning::PhoneNumber]);
    }

    #[test]
    fn finds_ids_emails_handles_and_names() {
        assert_eq!(scan("card 199012345678"), vec![PiiWarning::NationalId]);
        assert_eq!(scan("wrote to x.y@mail.com"), vec![PiiWarning::Email]);
        assert_eq!(scan("account @bad_guy99 posted"), vec![PiiWarning::Handle]);
        assert_eq!(scan("her name is Layla"), vec![PiiWarning::FullName]);
        assert_eq!(scan("الفتاة اسمها سارة"), vec![PiiWarning::FullName]);
    }

    #[test]
    fn ordinary_notes_pass() {
        assert!(scan("Accompanied to community police on 12 May; felt safer.").is_empty());
        assert!(scan("تمت مرافقتها إلى الشرطة المجتمعية وشعرت بأمان أكبر").is_empty());
        assert!(scan("Follow up in 2 weeks, risk 3 of 5").is_empty());
    }
}
