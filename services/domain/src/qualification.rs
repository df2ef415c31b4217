//! Qualifications: (category, series, level, title).
//!
//! `level` is an ordinal, larger is more senior, and its range depends on the
//! category (see the brief's table). A [`Qualification`] can only be built
//! through [`Qualification::parse`], so an out-of-range level cannot exist.

use std::fmt;

use crate::Violations;
use crate::error::Collector;

/// The kind of qualification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// 职称, levels 1 员级 .. 5 正高级.
    ProfessionalTitle,
    /// 职业技能等级, levels 1 学徒 .. 8 首席技师.
    SkillLevel,
    /// 准入类职业资格, level 1 (held).
    PracticeLicense,
    /// 人才分类, levels 1 E .. 5 A.
    TalentTier,
    /// 外国人工作许可, levels 1 C, 2 B, 3 A.
    ForeignWorkPermit,
}

impl Category {
    /// Every category, in API order.
    pub const ALL: [Category; 5] = [
        Self::ProfessionalTitle,
        Self::SkillLevel,
        Self::PracticeLicense,
        Self::TalentTier,
        Self::ForeignWorkPermit,
    ];

    /// Display names of the category: (Chinese, English).
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::ProfessionalTitle => ("职称", "Professional title"),
            Self::SkillLevel => ("职业技能等级", "Vocational skill level"),
            Self::PracticeLicense => ("准入类职业资格", "Practice licence"),
            Self::TalentTier => ("人才分类", "Talent tier"),
            Self::ForeignWorkPermit => ("外国人工作许可", "Foreign work permit"),
        }
    }

    /// Display names of each level, 1 first: (level, Chinese, English).
    pub fn level_names(self) -> &'static [(u8, &'static str, &'static str)] {
        match self {
            Self::ProfessionalTitle => &[
                (1, "员级", "Junior"),
                (2, "助理级", "Assistant"),
                (3, "中级", "Intermediate"),
                (4, "副高级", "Associate senior"),
                (5, "正高级", "Senior"),
            ],
            Self::SkillLevel => &[
                (1, "学徒", "Apprentice"),
                (2, "初级工", "Junior worker"),
                (3, "中级工", "Intermediate worker"),
                (4, "高级工", "Senior worker"),
                (5, "技师", "Technician"),
                (6, "高级技师", "Senior technician"),
                (7, "特级技师", "Principal technician"),
                (8, "首席技师", "Chief technician"),
            ],
            Self::PracticeLicense => &[(1, "持证", "Licensed")],
            Self::TalentTier => &[
                (1, "E类", "Tier E"),
                (2, "D类", "Tier D"),
                (3, "C类", "Tier C"),
                (4, "B类", "Tier B"),
                (5, "A类", "Tier A"),
            ],
            Self::ForeignWorkPermit => &[
                (1, "C类", "Category C"),
                (2, "B类", "Category B"),
                (3, "A类", "Category A"),
            ],
        }
    }

    /// The highest level of the category (the lowest is always 1).
    pub fn max_level(self) -> u8 {
        match self {
            Self::ProfessionalTitle => 5,
            Self::SkillLevel => 8,
            Self::PracticeLicense => 1,
            Self::TalentTier => 5,
            Self::ForeignWorkPermit => 3,
        }
    }

    /// The stable name used in storage and in credential tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProfessionalTitle => "PROFESSIONAL_TITLE",
            Self::SkillLevel => "SKILL_LEVEL",
            Self::PracticeLicense => "PRACTICE_LICENSE",
            Self::TalentTier => "TALENT_TIER",
            Self::ForeignWorkPermit => "FOREIGN_WORK_PERMIT",
        }
    }

    /// Inverse of [`Category::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The series the brief names for this category. Series are open (a
    /// new occupation code needs no release), so this is not a whitelist:
    /// it tells which combinations are real, e.g. that `health` is a title
    /// series and never a skill level's occupation.
    pub fn known_series(self) -> &'static [&'static str] {
        match self {
            Self::ProfessionalTitle => &[
                "engineering",
                "education",
                "health",
                "economics",
                "accounting",
                "agriculture",
                "law",
                "research",
            ],
            Self::SkillLevel => &["electrician", "cnc-machinist"],
            Self::PracticeLicense => &["physician", "lawyer", "teacher", "registered-engineer"],
            Self::TalentTier => &[],
            Self::ForeignWorkPermit => &["foreign-expert"],
        }
    }

    /// Whether a qualification of this category can have `series`: a series
    /// the brief names for another category cannot.
    pub fn can_have_series(self, series: &str) -> bool {
        self.known_series().contains(&series)
            || !Self::ALL
                .into_iter()
                .any(|c| c.known_series().contains(&series))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated qualification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "QualificationParts", into = "QualificationParts")]
pub struct Qualification {
    category: Category,
    series: String,
    level: u8,
    title: String,
}

/// The parts of a qualification as plain data (its serialized form).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QualificationParts {
    /// Category name (`PROFESSIONAL_TITLE`, ...).
    pub category: String,
    /// Series slug.
    pub series: String,
    /// Level.
    pub level: i32,
    /// Title.
    pub title: String,
}

impl TryFrom<QualificationParts> for Qualification {
    type Error = Violations;
    fn try_from(p: QualificationParts) -> Result<Self, Violations> {
        Self::parse(
            "qualification",
            Category::from_name(&p.category),
            &p.series,
            p.level,
            &p.title,
        )
    }
}

impl From<Qualification> for QualificationParts {
    fn from(q: Qualification) -> Self {
        Self {
            category: q.category.as_str().to_owned(),
            series: q.series,
            level: i32::from(q.level),
            title: q.title,
        }
    }
}

impl Qualification {
    /// Parses the parts of a qualification; `prefix` is the API path of the
    /// message (`qualification`), used in the violations.
    pub fn parse(
        prefix: &str,
        category: Option<Category>,
        series: &str,
        level: i32,
        title: &str,
    ) -> Result<Self, Violations> {
        let mut errs = Collector::default();
        if category.is_none() {
            errs.push(format!("{prefix}.category"), "a category is required");
        }
        let series_ok = (1..=64).contains(&series.len())
            && series
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !series_ok {
            errs.push(
                format!("{prefix}.series"),
                "must be 1 to 64 lowercase letters, digits or '-'",
            );
        }
        let level = match category {
            Some(c) => match u8::try_from(level) {
                Ok(l) if (1..=c.max_level()).contains(&l) => Some(l),
                _ => {
                    errs.push(
                        format!("{prefix}.level"),
                        format!("must be between 1 and {} for {c}", c.max_level()),
                    );
                    None
                }
            },
            None => None,
        };
        let title_trimmed = errs
            .take(crate::text::line(&format!("{prefix}.title"), title, 200))
            .unwrap_or_default();
        errs.finish()?;
        match (category, level) {
            (Some(category), Some(level)) => Ok(Self {
                category,
                series: series.to_owned(),
                level,
                title: title_trimmed,
            }),
            // Unreachable: a missing category or level was recorded above.
            _ => Err(Violations::one(prefix, "incomplete qualification")),
        }
    }

    /// The category.
    pub fn category(&self) -> Category {
        self.category
    }
    /// The series slug.
    pub fn series(&self) -> &str {
        &self.series
    }
    /// The level, within `1..=category.max_level()`.
    pub fn level(&self) -> u8 {
        self.level
    }
    /// The human-readable title.
    pub fn title(&self) -> &str {
        &self.title
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_has_a_name_in_both_languages() {
        for c in Category::ALL {
            let names = c.level_names();
            assert_eq!(names.len(), usize::from(c.max_level()), "{c:?}");
            for (i, (level, zh, en)) in names.iter().enumerate() {
                assert_eq!(usize::from(*level), i + 1);
                assert!(!zh.is_empty() && en.is_ascii() && !en.is_empty());
            }
            let (zh, en) = c.names();
            assert!(!zh.is_ascii() && en.is_ascii());
        }
    }

    #[test]
    fn levels_follow_the_category_scale() {
        for c in Category::ALL {
            assert!(Qualification::parse("q", Some(c), "x", 1, "t").is_ok());
            assert!(Qualification::parse("q", Some(c), "x", i32::from(c.max_level()), "t").is_ok());
            assert!(Qualification::parse("q", Some(c), "x", 0, "t").is_err());
            assert!(
                Qualification::parse("q", Some(c), "x", i32::from(c.max_level()) + 1, "t").is_err()
            );
        }
    }

    #[test]
    fn reports_every_bad_field() {
        let Err(Violations(v)) = Qualification::parse("qualification", None, "Bad Series", 3, " ")
        else {
            unreachable!("bad input accepted")
        };
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "qualification.category",
                "qualification.series",
                "qualification.title"
            ]
        );
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::from_name(c.as_str()), Some(c));
        }
        assert_eq!(Category::from_name("nope"), None);
    }
}
