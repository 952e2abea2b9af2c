//! The closed vocabularies of the case record (GBVIMS and this programme's
//! digital-extortion extension), each with a stable code stored in the
//! document and a label in English and Arabic for people.
//!
//! Codes never change once released: documents and statistics depend on
//! them. Labels may be improved at any time.

use std::fmt;
use std::str::FromStr;

use super::ValidationError;

/// A language for labels and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English (reporting).
    #[default]
    En,
    /// Arabic (the working language in the field).
    Ar,
}

/// One accepted value of a vocabulary: its code and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The stable code.
    pub code: &'static str,
    /// English label.
    pub en: &'static str,
    /// Arabic label.
    pub ar: &'static str,
}

impl Choice {
    /// The label in `lang`.
    pub fn label(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Ar => self.ar,
        }
    }
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $field:literal {
        $($variant:ident = $code:literal, $en:literal, $ar:literal;)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[doc = $en] #[serde(rename = $code)] $variant,)+
        }

        impl $name {
            /// Every accepted value, with labels.
            pub const CHOICES: &'static [Choice] = &[$(Choice { code: $code, en: $en, ar: $ar }),+];

            /// The stable code.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The label in `lang`.
            pub fn label(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(($name::$variant, Lang::En) => $en,
                      ($name::$variant, Lang::Ar) => $ar,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            /// Accepts the code, or the English or Arabic label.
            fn from_str(s: &str) -> Result<Self, ValidationError> {
                let s = s.trim();
                $(if s == $code || s.eq_ignore_ascii_case($en) || s == $ar {
                    return Ok($name::$variant);
                })+
                Err(ValidationError::InvalidValue {
                    field: $field,
                    value: s.to_owned(),
                    accepted: Self::CHOICES,
                })
            }
        }
    };
}

vocabulary!(
    /// Survivor age band.
    AgeBand, "survivor.age_band" {
        Age0To11 = "0-11", "0–11 years", "٠–١١ سنة";
        Age12To17 = "12-17", "12–17 years", "١٢–١٧ سنة";
        Age18To25 = "18-25", "18–25 years", "١٨–٢٥ سنة";
        Age26To40 = "26-40", "26–40 years", "٢٦–٤٠ سنة";
        Age41To60 = "41-60", "41–60 years", "٤١–٦٠ سنة";
        Age61Plus = "61+", "61 years and over", "٦١ سنة فأكثر";
    }
);

impl AgeBand {
    /// Whether the band is under 18.
    pub fn is_minor(self) -> bool {
        matches!(self, AgeBand::Age0To11 | AgeBand::Age12To17)
    }
}

vocabulary!(
    /// Sex of the survivor.
    Sex, "survivor.sex" {
        Female = "female", "Female", "أنثى";
        Male = "male", "Male", "ذكر";
    }
);

vocabulary!(
    /// Displacement status.
    Displacement, "survivor.displacement" {
        Resident = "resident", "Resident", "مقيم";
        Idp = "idp", "Internally displaced", "نازح داخلياً";
        Returnee = "returnee", "Returnee", "عائد";
        Refugee = "refugee", "Refugee", "لاجئ";
        Other = "other", "Other", "أخرى";
    }
);

vocabulary!(
    /// Marital status.
    MaritalStatus, "survivor.marital_status" {
        Single = "single", "Single", "عزباء / أعزب";
        Married = "married", "Married", "متزوج/ة";
        DivorcedSeparated = "divorced_separated", "Divorced or separated", "مطلق/ة أو منفصل/ة";
        Widowed = "widowed", "Widowed", "أرمل/ة";
    }
);

vocabulary!(
    /// How a minor's participation was agreed.
    MinorConsent, "survivor.minor_consent" {
        NotApplicable = "not_applicable", "Not applicable (adult)", "لا ينطبق (بالغ)";
        None = "none", "Not yet recorded", "لم تُسجَّل بعد";
        CaregiverConsent = "caregiver_consent", "Caregiver consent", "موافقة مقدم الرعاية";
        Assent = "assent", "Child's assent", "قبول الطفل";
        Both = "caregiver_consent_and_assent", "Caregiver consent and child's assent", "موافقة مقدم الرعاية وقبول الطفل";
    }
);

vocabulary!(
    /// GBVIMS core incident type (exactly one per case).
    GbvType, "incident.gbv_type" {
        Rape = "rape", "Rape", "اغتصاب";
        SexualAssault = "sexual_assault", "Sexual assault", "اعتداء جنسي";
        PhysicalAssault = "physical_assault", "Physical assault", "اعتداء جسدي";
        ForcedMarriage = "forced_marriage", "Forced marriage", "زواج قسري";
        DenialOfResources = "denial_of_resources", "Denial of resources, opportunities or services", "الحرمان من الموارد أو الفرص أو الخدمات";
        Psychological = "psychological_emotional_abuse", "Psychological / emotional abuse", "إساءة نفسية / عاطفية";
        NonGbv = "non_gbv", "Non-GBV", "ليست حالة عنف قائم على النوع الاجتماعي";
    }
);

vocabulary!(
    /// Kind of digital extortion (programme extension).
    ExtortionSubtype, "incident.extortion.subtype" {
        Sexual = "sexual_extortion", "Sexual extortion", "ابتزاز جنسي";
        Financial = "financial_extortion", "Financial extortion", "ابتزاز مالي";
        ThreatToShare = "threat_to_share_images", "Threat to share images", "تهديد بنشر الصور";
        SharedWithoutConsent = "images_shared_without_consent", "Images shared without consent", "نشر الصور دون موافقة";
        AccountTakeover = "account_takeover", "Account takeover", "الاستيلاء على الحساب";
        Impersonation = "impersonation", "Impersonation", "انتحال الشخصية";
        Cyberstalking = "cyberstalking", "Cyberstalking", "الملاحقة الإلكترونية";
        Harassment = "harassing_messages", "Harassing messages", "رسائل مضايقة";
    }
);

vocabulary!(
    /// Platform the extortion happened on.
    Platform, "incident.extortion.platform" {
        WhatsApp = "whatsapp", "WhatsApp", "واتساب";
        Facebook = "facebook_messenger", "Facebook / Messenger", "فيسبوك / ماسنجر";
        Instagram = "instagram", "Instagram", "إنستغرام";
        Telegram = "telegram", "Telegram", "تيليغرام";
        TikTok = "tiktok", "TikTok", "تيك توك";
        Snapchat = "snapchat", "Snapchat", "سناب شات";
        SmsCalls = "sms_calls", "SMS / phone calls", "رسائل نصية / مكالمات";
        Other = "other", "Other", "أخرى";
    }
);

vocabulary!(
    /// What the perpetrator demanded.
    Demand, "incident.extortion.demand" {
        Money = "money", "Money", "مال";
        MoreImages = "more_images", "More images", "صور إضافية";
        SexualActs = "sexual_acts", "Sexual acts", "أفعال جنسية";
        Meeting = "meeting", "A meeting", "لقاء";
        Other = "other", "Other", "أخرى";
    }
);

vocabulary!(
    /// Time of day of the incident.
    TimeOfDay, "incident.time_of_day" {
        Morning = "morning", "Morning", "صباحاً";
        Afternoon = "afternoon", "Afternoon", "بعد الظهر";
        Evening = "evening", "Evening", "مساءً";
        Night = "night", "Night", "ليلاً";
    }
);

vocabulary!(
    /// Number of perpetrators.
    PerpetratorCount, "incident.perpetrator.count" {
        One = "1", "One", "واحد";
        Two = "2", "Two", "اثنان";
        Three = "3", "Three", "ثلاثة";
        More = "more", "More than three", "أكثر من ثلاثة";
        Unknown = "unknown", "Unknown", "غير معروف";
    }
);

vocabulary!(
    /// Sex of the perpetrator(s).
    PerpetratorSex, "incident.perpetrator.sex" {
        Male = "male", "Male", "ذكر";
        Female = "female", "Female", "أنثى";
        Both = "both", "Both (several perpetrators)", "كلاهما (عدة جناة)";
        Unknown = "unknown", "Unknown", "غير معروف";
    }
);

vocabulary!(
    /// Age group of the perpetrator(s).
    PerpetratorAge, "incident.perpetrator.age_group" {
        Age0To11 = "0-11", "0–11 years", "٠–١١ سنة";
        Age12To17 = "12-17", "12–17 years", "١٢–١٧ سنة";
        Age18To25 = "18-25", "18–25 years", "١٨–٢٥ سنة";
        Age26To40 = "26-40", "26–40 years", "٢٦–٤٠ سنة";
        Age41To60 = "41-60", "41–60 years", "٤١–٦٠ سنة";
        Age61Plus = "61+", "61 years and over", "٦١ سنة فأكثر";
        Unknown = "unknown", "Unknown", "غير معروف";
    }
);

vocabulary!(
    /// Relationship of the perpetrator to the survivor (GBVIMS list).
    Relationship, "incident.perpetrator.relationship" {
        IntimatePartner = "intimate_partner", "Intimate partner / former partner", "شريك حميم / شريك سابق";
        PrimaryCaregiver = "primary_caregiver", "Primary caregiver", "مقدم الرعاية الأساسي";
        Family = "family_other", "Family other than spouse or caregiver", "أحد أفراد الأسرة (غير الزوج أو مقدم الرعاية)";
        Employer = "supervisor_employer", "Supervisor / employer", "مشرف / صاحب عمل";
        Schoolmate = "schoolmate", "Schoolmate", "زميل دراسة";
        Teacher = "teacher_school_official", "Teacher / school official", "معلم / مسؤول مدرسي";
        ServiceProvider = "service_provider", "Service provider", "مقدم خدمة";
        Housemate = "cotenant_housemate", "Co-tenant / housemate", "شريك في السكن";
        FriendNeighbour = "family_friend_neighbour", "Family friend / neighbour", "صديق للعائلة / جار";
        OtherDisplaced = "other_refugee_idp_returnee", "Other refugee / IDP / returnee", "لاجئ / نازح / عائد آخر";
        OtherResident = "other_resident", "Other resident community member", "فرد آخر من المجتمع المقيم";
        Other = "other", "Other", "أخرى";
        NoRelation = "no_relation", "No relation", "لا توجد علاقة";
        Unknown = "unknown", "Unknown", "غير معروف";
    }
);

vocabulary!(
    /// Risk level.
    RiskLevel, "risk.level" {
        High = "high", "High", "مرتفع";
        Medium = "medium", "Medium", "متوسط";
        Low = "low", "Low", "منخفض";
    }
);

vocabulary!(
    /// Who information may be released to (one consent each).
    Recipient, "referral.recipient" {
        CommunityPolice = "community_police", "Community police", "الشرطة المجتمعية";
        NationalSecurity = "national_security", "National security / intelligence", "الأمن الوطني / المخابرات";
        Mhpss = "mhpss", "Mental-health and psychosocial support", "الصحة النفسية والدعم النفسي الاجتماعي";
        LegalAid = "legal_aid", "Legal aid", "المساعدة القانونية";
        OtherNgo = "other_ngo", "Other NGO", "منظمة غير حكومية أخرى";
    }
);

vocabulary!(
    /// Service a referral is for.
    ServiceType, "referral.service_type" {
        Mhpss = "mhpss", "Mental-health and psychosocial support", "الصحة النفسية والدعم النفسي الاجتماعي";
        Police = "police", "Police / reporting", "الشرطة / الإبلاغ";
        Security = "security", "National security", "الأمن الوطني";
        Legal = "legal", "Legal assistance", "مساعدة قانونية";
        Health = "health", "Health / medical", "صحية / طبية";
        Shelter = "safe_shelter", "Safe shelter", "مأوى آمن";
        Livelihood = "livelihood", "Livelihood", "سبل العيش";
        Other = "other", "Other", "أخرى";
    }
);

vocabulary!(
    /// Status of a referral.
    ReferralStatus, "referral.status" {
        Referred = "referred", "Referred", "تمت الإحالة";
        ProvidedByAgency = "provided_by_agency", "Provided by our agency", "قدمتها منظمتنا";
        AlreadyReceiving = "already_receiving", "Already receiving elsewhere", "تتلقاها في مكان آخر";
        Declined = "declined_by_survivor", "Declined by survivor", "رفضتها الناجية";
        Unavailable = "service_unavailable", "Service unavailable", "الخدمة غير متوفرة";
        NotApplicable = "not_applicable", "Not applicable", "لا ينطبق";
    }
);

vocabulary!(
    /// Kind of follow-up.
    FollowupType, "followup.type" {
        Call = "call", "Call", "مكالمة";
        Visit = "visit", "Visit", "زيارة";
        Accompaniment = "accompaniment", "Accompaniment", "مرافقة";
        OfficeMeeting = "office_meeting", "Meeting at the office", "لقاء في المكتب";
    }
);

vocabulary!(
    /// Case status.
    CaseState, "status.state" {
        Open = "open", "Open", "مفتوحة";
        Closed = "closed", "Closed", "مغلقة";
        Transferred = "transferred", "Transferred", "محوّلة";
        Duplicate = "duplicate", "Duplicate", "مكررة";
    }
);

vocabulary!(
    /// Delay between incident and report, in the GBVIMS buckets.
    ReportingDelay, "reporting_delay" {
        Days0To3 = "0-3_days", "0–3 days", "٠–٣ أيام";
        Days4To5 = "4-5_days", "4–5 days", "٤–٥ أيام";
        Days6To14 = "6-14_days", "6–14 days", "٦–١٤ يوماً";
        Weeks2To4 = "2_weeks-1_month", "2 weeks – 1 month", "أسبوعان – شهر";
        OverMonth = "over_1_month", "Over 1 month", "أكثر من شهر";
    }
);

impl ReportingDelay {
    /// The bucket for a delay of `days` (negative delays are invalid and
    /// rejected by validation before this is asked).
    pub fn from_days(days: i64) -> Self {
        match days {
            ..=3 => ReportingDelay::Days0To3,
            4..=5 => ReportingDelay::Days4To5,
            6..=14 => ReportingDelay::Days6To14,
            15..=31 => ReportingDelay::Weeks2To4,
            _ => ReportingDelay::OverMonth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_labels_in_both_languages() {
        assert_eq!("whatsapp".parse::<Platform>().unwrap(), Platform::WhatsApp);
        assert_eq!("WhatsApp".parse::<Platform>().unwrap(), Platform::WhatsApp);
        assert_eq!("واتساب".parse::<Platform>().unwrap(), Platform::WhatsApp);
        assert_eq!(RiskLevel::High.label(Lang::Ar), "مرتفع");
    }

    #[test]
    fn unknown_values_list_what_is_accepted() {
        let err = "sometimes".parse::<RiskLevel>().unwrap_err();
        match err {
            ValidationError::InvalidValue {
                field, accepted, ..
            } => {
                assert_eq!(field, "risk.level");
                assert_eq!(accepted.len(), 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn codes_are_unique_within_each_vocabulary() {
        for choices in [
            GbvType::CHOICES,
            Relationship::CHOICES,
            ExtortionSubtype::CHOICES,
            Platform::CHOICES,
        ] {
            let mut codes: Vec<_> = choices.iter().map(|c| c.code).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), choices.len());
        }
    }

    #[test]
    fn reporting_delay_buckets() {
        assert_eq!(ReportingDelay::from_days(0), ReportingDelay::Days0To3);
        assert_eq!(ReportingDelay::from_days(5), ReportingDelay::Days4To5);
        assert_eq!(ReportingDelay::from_days(14), ReportingDelay::Days6To14);
        assert_eq!(ReportingDelay::from_days(20), ReportingDelay::Weeks2To4);
        assert_eq!(ReportingDelay::from_days(400), ReportingDelay::OverMonth);
    }
}
