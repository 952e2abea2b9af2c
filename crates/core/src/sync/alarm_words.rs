//! What each alarm code means and what to do about it, in English and
//! Arabic: the catalogue `amana alarms` (and any app on the same core)
//! shows. One entry per code the sync can raise; a test checks that none
//! is missing and that `docs/auditor-guide.md` lists each.

use crate::case::Lang;

/// The words for one alarm code.
#[derive(Clone, Copy, Debug)]
pub struct AlarmWords {
    /// The stable code.
    pub code: &'static str,
    /// What it means, in English.
    pub meaning_en: &'static str,
    /// What to do, in English.
    pub advice_en: &'static str,
    /// What it means, in Arabic.
    pub meaning_ar: &'static str,
    /// What to do, in Arabic.
    pub advice_ar: &'static str,
}

impl AlarmWords {
    /// What it means, in `lang`.
    pub fn meaning(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.meaning_en,
            Lang::Ar => self.meaning_ar,
        }
    }

    /// What to do, in `lang`.
    pub fn advice(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.advice_en,
            Lang::Ar => self.advice_ar,
        }
    }
}

const RELAY_EN: &str = "Tell the office. Keep syncing: nothing false is applied, and the device repairs itself when the relay behaves again.";
const RELAY_AR: &str = "أبلغ المكتب. واصل المزامنة: لا يُطبَّق شيء مزيّف، ويُصلح الجهاز نفسه حين يعود الخادم الوسيط إلى السلوك السليم.";
const AUTHOR_EN: &str = "Tell the office: the device named may be stolen or broken. The office checks it, and revokes it if it was taken.";
const AUTHOR_AR: &str =
    "أبلغ المكتب: قد يكون الجهاز المذكور مسروقاً أو معطّلاً. يتحقق المكتب منه ويُلغيه إن أُخذ.";

macro_rules! words {
    ($($code:literal => $men:expr, $aen:expr, $mar:expr, $aar:expr;)*) => {
        /// Every alarm code with its words.
        pub const ALL: &[AlarmWords] = &[$(AlarmWords {
            code: $code,
            meaning_en: $men,
            advice_en: $aen,
            meaning_ar: $mar,
            advice_ar: $aar,
        }),*];
    };
}

words! {
    "relay_malformed" => "The relay's answer arrived whole but failed its checks (framing, order, team or format).", RELAY_EN,
        "وصل ردّ الخادم الوسيط كاملاً لكنه لم يجتز الفحوص (البنية أو الترتيب أو الفريق أو الصيغة).", RELAY_AR;
    "join_substituted" => "A join request's keys do not carry its invite's proof: someone (probably the relay) swapped them.", "Never approve it. Issue a new invite, hand it over in person, and tell whoever runs the relay.",
        "مفاتيح طلب الانضمام لا تحمل إثبات الدعوة: استبدلها أحدٌ (غالباً الخادم الوسيط).", "لا توافق عليه أبداً. أصدر دعوة جديدة وسلّمها باليد، وأبلغ من يدير الخادم الوسيط.";
    "safety_number_mismatch" => "The safety number typed does not match the joining device's.", "Ask the person to read the number again from their screen. If it still differs, do not approve: someone else may have used the code.",
        "رقم الأمان المُدخل لا يطابق رقم الجهاز المنضم.", "اطلب من الشخص قراءة الرقم من شاشته مجدداً. إن بقي مختلفاً فلا توافق: ربما استخدم شخص آخر الرمز.";
    "tls_pin_mismatch" => "The relay presented a TLS key other than the one pinned at enrolment.", "Do not sync on this network. Tell the office: someone may be impersonating the relay.",
        "قدّم الخادم الوسيط مفتاح TLS غير المثبّت عند التسجيل.", "لا تزامن على هذه الشبكة. أبلغ المكتب: ربما ينتحل أحدٌ صفة الخادم الوسيط.";
    "roster_invalid" => "The roster the relay sent does not verify.", RELAY_EN,
        "قائمة الأعضاء التي أرسلها الخادم الوسيط لا تجتاز التحقق.", RELAY_AR;
    "roster_rollback" => "The relay's roster is shorter than, or different from, the one this device already verified.", RELAY_EN,
        "قائمة الأعضاء لدى الخادم الوسيط أقصر من القائمة التي تحقق منها هذا الجهاز أو مختلفة عنها.", RELAY_AR;
    "roster_withheld" => "Another device wrote under a longer roster than the relay gives this device: a revocation or rotation is being hidden from it.", "Tell the office. This device sends nothing new until it has the roster, so nothing is sealed to a key a revoked device holds.",
        "كتب جهاز آخر وفق قائمة أعضاء أطول مما يعطيه الخادم الوسيط لهذا الجهاز: يُخفى عنه إلغاء أو تدوير مفاتيح.", "أبلغ المكتب. لا يرسل هذا الجهاز شيئاً جديداً حتى يحصل على القائمة، فلا يُختم شيء بمفتاح يملكه جهاز مُلغى.";
    "roster_fork" => "Another device saw a different roster at the same position: the relay shows two groups of devices two rosters.", "Tell the office at once: an admin key may be stolen.",
        "رأى جهاز آخر قائمة أعضاء مختلفة في الموضع نفسه: يعرض الخادم الوسيط على مجموعتين من الأجهزة قائمتين مختلفتين.", "أبلغ المكتب فوراً: قد يكون مفتاح أحد المسؤولين مسروقاً.";
    "stale_roster" => "A device wrote under a roster older than one it had already seen from others.", AUTHOR_EN,
        "كتب جهاز وفق قائمة أعضاء أقدم من قائمة كان قد رآها من غيره.", AUTHOR_AR;
    "stale_epoch" => "A device sealed data under an older team key than its own roster names.", AUTHOR_EN,
        "ختم جهاز بيانات بمفتاح فريق أقدم مما تسمّيه قائمته.", AUTHOR_AR;
    "bad_key_delivery" => "A team-key delivery failed its checks; it was ignored.", RELAY_EN,
        "فشل تسليم مفتاح فريق في الفحوص فتم تجاهله.", RELAY_AR;
    "bad_announcement" => "A device's key announcement from the relay failed its checks; no key was sent to it.", RELAY_EN,
        "فشل إعلان مفتاح أحد الأجهزة القادم من الخادم الوسيط في الفحوص، فلم يُرسل إليه مفتاح.", RELAY_AR;
    "bad_receipt" => "A relay receipt does not verify: that upload is not confirmed.", RELAY_EN,
        "إيصال الخادم الوسيط لا يجتاز التحقق: هذا الرفع غير مؤكد.", RELAY_AR;
    "relay_lost_own_log" => "The relay lost or replaced envelopes of this device that it had acknowledged.", "Keep this device's data (it holds the only copy); tell the office.",
        "فقد الخادم الوسيط أو استبدل مغلفات لهذا الجهاز كان قد أقرّ باستلامها.", "احتفظ ببيانات هذا الجهاز (فهو يحمل النسخة الوحيدة)؛ أبلغ المكتب.";
    "own_tail_withheld" => "Other devices keep syncing but none has seen this device's latest envelopes: the relay hides them from the team.", "Tell the office by another channel (phone): what this device sent may not have reached anyone.",
        "تواصل الأجهزة الأخرى المزامنة لكن لم يرَ أيٌّ منها أحدث مغلفات هذا الجهاز: يخفيها الخادم الوسيط عن الفريق.", "أبلغ المكتب بوسيلة أخرى (الهاتف): ربما لم يصل ما أرسله هذا الجهاز إلى أحد.";
    "snapshot_missing" => "A shred rotated the team key, but its snapshot never arrived: the shred cannot finish on this device.", RELAY_EN,
        "أدّى الإتلاف إلى تدوير مفتاح الفريق لكن لقطته لم تصل: لا يكتمل الإتلاف على هذا الجهاز.", RELAY_AR;
    "rollback" => "The relay reports a device's log behind what this device already applied.", RELAY_EN,
        "يُبلغ الخادم الوسيط عن سجل جهاز متأخر عمّا طبّقه هذا الجهاز.", RELAY_AR;
    "fork" => "The relay reports a different envelope than the one this device applied.", RELAY_EN,
        "يُبلغ الخادم الوسيط عن مغلف غير الذي طبّقه هذا الجهاز.", RELAY_AR;
    "withheld" => "The relay reports envelopes it did not send.", RELAY_EN,
        "يُبلغ الخادم الوسيط عن مغلفات لم يرسلها.", RELAY_AR;
    "fork_witnessed" => "Another device saw a different envelope of the same log: the relay shows devices different histories, or someone else holds that device's key.", AUTHOR_EN,
        "رأى جهاز آخر مغلفاً مختلفاً من السجل نفسه: يعرض الخادم الوسيط تواريخ مختلفة على الأجهزة، أو يملك أحد آخر مفتاح ذلك الجهاز.", AUTHOR_AR;
    "witnessed_ahead" => "Another device has seen more of a log than the relay gives this device.", RELAY_EN,
        "رأى جهاز آخر من أحد السجلات أكثر مما يعطيه الخادم الوسيط لهذا الجهاز.", RELAY_AR;
    "malformed" => "An envelope that is not an envelope.", RELAY_EN,
        "مغلف ليس مغلفاً صالحاً.", RELAY_AR;
    "wrong_team" => "An envelope of another team.", RELAY_EN,
        "مغلف يخص فريقاً آخر.", RELAY_AR;
    "unknown_author" => "An envelope signed by a device that is not on the roster.", RELAY_EN,
        "مغلف موقّع من جهاز غير موجود في قائمة الأعضاء.", RELAY_AR;
    "revoked_author" => "An envelope of a revoked device beyond what the team accepts from it.", AUTHOR_EN,
        "مغلف من جهاز مُلغى يتجاوز ما يقبله الفريق منه.", AUTHOR_AR;
    "revoked_fork" => "A revoked device's envelope at its last accepted position differs from the one the admin verified.", AUTHOR_EN,
        "مغلف جهاز مُلغى في آخر موضع مقبول يختلف عمّا تحقق منه المسؤول.", AUTHOR_AR;
    "epoch_after_revocation" => "A revoked device wrote under a team key made after its revocation.", AUTHOR_EN,
        "كتب جهاز مُلغى بمفتاح فريق صُنع بعد إلغائه.", AUTHOR_AR;
    "author_cannot_write" => "An envelope from a device whose role writes nothing.", AUTHOR_EN,
        "مغلف من جهاز لا يسمح دوره بالكتابة.", AUTHOR_AR;
    "epoch_not_allowed" => "An envelope under a team key its author may not use.", AUTHOR_EN,
        "مغلف بمفتاح فريق لا يحق لكاتبه استخدامه.", AUTHOR_AR;
    "bad_signature" => "An envelope whose signature does not verify: forged or altered.", RELAY_EN,
        "مغلف لا يجتاز توقيعه التحقق: مزوّر أو معدّل.", RELAY_AR;
    "replay" => "An envelope already applied, served again.", RELAY_EN,
        "مغلف سبق تطبيقه أُعيد إرساله.", RELAY_AR;
    "gap" => "An envelope whose predecessor was withheld.", RELAY_EN,
        "مغلف حُجب المغلف الذي يسبقه.", RELAY_AR;
    "broken_chain" => "An envelope that does not chain to the one before it.", RELAY_EN,
        "مغلف لا يتصل بالمغلف الذي قبله.", RELAY_AR;
    "body_dropped" => "The relay dropped the content of an envelope it must keep.", RELAY_EN,
        "أسقط الخادم الوسيط محتوى مغلف يجب أن يحتفظ به.", RELAY_AR;
    "snapshot_not_admin" => "A snapshot from a device that is not an admin.", AUTHOR_EN,
        "لقطة من جهاز ليس مسؤولاً.", AUTHOR_AR;
    "unreadable" => "A signed envelope whose content does not decrypt or does not match its header.", AUTHOR_EN,
        "مغلف موقّع لا يمكن فك تشفير محتواه أو لا يطابق ترويسته.", AUTHOR_AR;
    "invalid_content" => "A signed envelope whose content is not valid.", AUTHOR_EN,
        "مغلف موقّع محتواه غير صالح.", AUTHOR_AR;
    "decompression_bomb" => "A signed envelope built to expand to far more than its size (a decompression bomb), refused before it was expanded.", AUTHOR_EN,
        "مغلف موقّع مصمَّم ليتمدد إلى أضعاف حجمه (قنبلة فك ضغط)، رُفض قبل فكّه.", AUTHOR_AR;
    "forged_actor" => "A change written under another device's name.", AUTHOR_EN,
        "تعديل مكتوب باسم جهاز آخر.", AUTHOR_AR;
    "not_permitted" => "A change the author's role may not make (an office decision from a field device, a volunteer editing someone else's case).", AUTHOR_EN,
        "تعديل لا يسمح به دور كاتبه (قرار مكتبي من جهاز ميداني، أو متطوع يعدّل حالة غيره).", AUTHOR_AR;
    "invalid_schema" => "A change that would make a case unreadable.", AUTHOR_EN,
        "تعديل يجعل الحالة غير مقروءة.", AUTHOR_AR;
    "missing_dependencies" => "A change that builds on changes this device never received.", RELAY_EN,
        "تعديل مبني على تعديلات لم يستلمها هذا الجهاز.", RELAY_AR;
}

/// The words for `code`, if it is a known alarm code.
pub fn describe(code: &str) -> Option<&'static AlarmWords> {
    ALL.iter().find(|w| w.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_words_once_in_both_languages() {
        for (i, w) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..].iter().all(|o| o.code != w.code),
                "{} twice",
                w.code
            );
            for text in [w.meaning_en, w.advice_en, w.meaning_ar, w.advice_ar] {
                assert!(!text.trim().is_empty(), "{}", w.code);
            }
            assert!(
                w.meaning_ar
                    .chars()
                    .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)),
                "{} has no Arabic",
                w.code
            );
        }
    }

    #[test]
    fn the_auditor_guide_lists_every_code() {
        let guide = include_str!("../../../../docs/auditor-guide.md");
        for w in ALL {
            assert!(
                guide.contains(&format!("`{}`", w.code)),
                "docs/auditor-guide.md does not list `{}`",
                w.code
            );
        }
    }
}
