//! Message templates: what a member reads for each kind of event, per channel.
//!
//! Each event kind has an SMS body (`<kind>.sms.j2`), an email subject
//! (`<kind>.email.subject.j2`), a plain-text email body (`<kind>.email.txt.j2`) and an
//! optional HTML email body (`<kind>.email.html.j2`). The defaults live in
//! `config/templates/` and are compiled into the binary, so the daemon needs no files
//! to run; an operator's directory overrides them file by file (see
//! `config/templates/README.md` for the variables templates can use).
//!
//! Templates are MiniJinja with strict undefined handling: a misspelt variable is an
//! error rather than an empty string sent to every member.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use super::segments::{self, Encoding};

/// What happened to a member's points; each kind has its own templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Points earned and available now.
    Earned,
    /// Points earned but pending until a date (e.g. the end of the return period).
    EarnedPending,
    /// Pending points became available.
    Matured,
    /// Points taken back after a refund.
    Reversed,
    /// Points spent on a reward.
    Redeemed,
    /// A redemption was cancelled and its points returned.
    RedemptionReturned,
    /// Points added or removed by hand.
    Adjusted,
    /// Points expired.
    Expired,
    /// Points will expire soon.
    ExpiringSoon,
    /// Bonus points (campaign, referral, ...).
    Bonus,
    /// Birthday bonus points.
    BirthdayBonus,
    /// The balance now covers a reward.
    RewardUnlocked,
    /// The member moved to another tier.
    TierChanged,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Earned,
        EventKind::EarnedPending,
        EventKind::Matured,
        EventKind::Reversed,
        EventKind::Redeemed,
        EventKind::RedemptionReturned,
        EventKind::Adjusted,
        EventKind::Expired,
        EventKind::ExpiringSoon,
        EventKind::Bonus,
        EventKind::BirthdayBonus,
        EventKind::RewardUnlocked,
        EventKind::TierChanged,
    ];

    /// The snake_case name used in template file names (same as the serde name).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Earned => "earned",
            EventKind::EarnedPending => "earned_pending",
            EventKind::Matured => "matured",
            EventKind::Reversed => "reversed",
            EventKind::Redeemed => "redeemed",
            EventKind::RedemptionReturned => "redemption_returned",
            EventKind::Adjusted => "adjusted",
            EventKind::Expired => "expired",
            EventKind::ExpiringSoon => "expiring_soon",
            EventKind::Bonus => "bonus",
            EventKind::BirthdayBonus => "birthday_bonus",
            EventKind::RewardUnlocked => "reward_unlocked",
            EventKind::TierChanged => "tier_changed",
        }
    }

    /// The kind with this [`name`](Self::name), if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a message reaches the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Text message: one body.
    Sms,
    /// Email: subject, plain-text body, optional HTML body.
    Email,
}

impl Channel {
    /// Lowercase name, as in template file names.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One template file of an event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Sms,
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 4] = [Part::Sms, Part::Subject, Part::Text, Part::Html];

    fn suffix(self) -> &'static str {
        match self {
            Part::Sms => ".sms.j2",
            Part::Subject => ".email.subject.j2",
            Part::Text => ".email.txt.j2",
            Part::Html => ".email.html.j2",
        }
    }

    fn file(self, kind: EventKind) -> String {
        format!("{}{}", kind.name(), self.suffix())
    }

    /// Whether the template is required: it has an embedded default. HTML has none,
    /// so emails are plain text unless an operator adds an HTML template.
    fn required(self) -> bool {
        self != Part::Html
    }

    /// Normalises rendered output. Trailing newlines are an artefact of template files
    /// (and cost SMS characters); a subject must be one line.
    fn tidy(self, out: String) -> String {
        match self {
            Part::Sms | Part::Text => out.trim_end().to_owned(),
            Part::Subject => out
                .replace('\r', "\n")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            Part::Html => out,
        }
    }
}

/// The kind and part a template file name stands for, if it is one.
fn parse_file_name(name: &str) -> Option<(EventKind, Part)> {
    Part::ALL.into_iter().find_map(|part| {
        let kind = EventKind::from_name(name.strip_suffix(part.suffix())?)?;
        Some((kind, part))
    })
}

/// Embedded default templates, `(file name, source)`, for every kind's required parts.
macro_rules! embedded {
    ($($kind:literal),* $(,)?) => {
        &[$(
            (
                concat!($kind, ".sms.j2"),
                include_str!(concat!("../../config/templates/", $kind, ".sms.j2")),
            ),
            (
                concat!($kind, ".email.subject.j2"),
                include_str!(concat!("../../config/templates/", $kind, ".email.subject.j2")),
            ),
            (
                concat!($kind, ".email.txt.j2"),
                include_str!(concat!("../../config/templates/", $kind, ".email.txt.j2")),
            ),
        )*]
    };
}

const EMBEDDED: &[(&str, &str)] = embedded!(
    "earned",
    "earned_pending",
    "matured",
    "reversed",
    "redeemed",
    "redemption_returned",
    "adjusted",
    "expired",
    "expiring_soon",
    "bonus",
    "birthday_bonus",
    "reward_unlocked",
    "tier_changed",
);

/// The next reward a member is saving for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextReward {
    /// Reward name.
    pub name: String,
    /// Its cost in points.
    pub cost: i64,
    /// Points still needed.
    pub missing: i64,
}

/// The variables a template sees. Every field is always present (options as `none`),
/// so templates can test optional ones with `{% if x %}` under strict undefined
/// handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateContext {
    /// The shop's name.
    pub shop_name: String,
    /// The member's first name.
    pub member_name: Option<String>,
    /// Points of this event (negative for a downward adjustment); for a coalesced
    /// message, the sum over its events.
    pub points: i64,
    /// Available balance after the (latest) event.
    pub balance: i64,
    /// Pending balance after the (latest) event.
    pub pending: i64,
    /// The next reward the member is saving for.
    pub next_reward: Option<NextReward>,
    /// The member's current tier.
    pub tier: Option<String>,
    /// For `tier_changed`: tier before (`None`: no tier).
    pub tier_from: Option<String>,
    /// For `tier_changed`: tier after (`None`: no tier).
    pub tier_to: Option<String>,
    /// The reward redeemed, returned or unlocked.
    pub reward_name: Option<String>,
    /// For `expiring_soon`: the expiry date, formatted in the shop's time zone.
    pub expiry_date: Option<String>,
    /// For `expiring_soon`: how many points expire.
    pub expiring_points: Option<i64>,
    /// For `earned_pending`: when the points become available, formatted in the shop's
    /// time zone.
    pub pending_until: Option<String>,
    /// How many events this message stands for (1 normally; more when events were
    /// coalesced, with the numbers of the latest one and `points` summed).
    pub coalesced: usize,
}

impl TemplateContext {
    /// Realistic data for `kind`, with every field the kind uses filled in, for
    /// checking templates and previewing them.
    pub fn sample(kind: EventKind) -> TemplateContext {
        let reward = |name: &str, cost: i64, missing: i64| {
            Some(NextReward {
                name: name.to_owned(),
                cost,
                missing,
            })
        };
        let mut c = TemplateContext {
            shop_name: "Corner Bakery & Cafe".to_owned(),
            member_name: Some("Anna".to_owned()),
            points: 120,
            balance: 1_450,
            pending: 0,
            next_reward: reward("Free large coffee", 1_500, 50),
            tier: Some("Gold".to_owned()),
            tier_from: None,
            tier_to: None,
            reward_name: None,
            expiry_date: None,
            expiring_points: None,
            pending_until: None,
            coalesced: 1,
        };
        match kind {
            EventKind::Earned | EventKind::Matured => {}
            EventKind::EarnedPending => {
                c.balance = 1_330;
                c.pending = 120;
                c.pending_until = Some("2026-07-15".to_owned());
                c.next_reward = reward("Free large coffee", 1_500, 170);
            }
            EventKind::Reversed => {
                c.points = 80;
                c.balance = 1_370;
                c.next_reward = reward("Free large coffee", 1_500, 130);
            }
            EventKind::Redeemed => {
                c.points = 1_500;
                c.balance = 230;
                c.reward_name = Some("Free large coffee".to_owned());
                c.next_reward = reward("Free large coffee", 1_500, 1_270);
            }
            EventKind::RedemptionReturned => {
                c.points = 1_500;
                c.balance = 1_730;
                c.reward_name = Some("Free large coffee".to_owned());
                c.next_reward = reward("Pastry box for four", 3_000, 1_270);
            }
            EventKind::Adjusted => {
                c.points = 50;
                c.balance = 1_500;
                c.next_reward = reward("Pastry box for four", 3_000, 1_500);
            }
            EventKind::Expired => {
                c.points = 300;
                c.balance = 1_150;
                c.next_reward = reward("Free large coffee", 1_500, 350);
            }
            EventKind::ExpiringSoon => {
                c.points = 300;
                c.expiring_points = Some(300);
                c.expiry_date = Some("2026-12-31".to_owned());
            }
            EventKind::Bonus => {
                c.points = 200;
                c.balance = 1_650;
                c.next_reward = reward("Pastry box for four", 3_000, 1_350);
            }
            EventKind::BirthdayBonus => {
                c.points = 250;
                c.balance = 1_700;
                c.next_reward = reward("Pastry box for four", 3_000, 1_300);
            }
            EventKind::RewardUnlocked => {
                c.balance = 1_520;
                c.reward_name = Some("Free large coffee".to_owned());
                c.next_reward = reward("Pastry box for four", 3_000, 1_480);
            }
            EventKind::TierChanged => {
                c.tier_from = Some("Silver".to_owned());
                c.tier_to = Some("Gold".to_owned());
            }
        }
        c
    }

    /// The contexts [`Templates::check`] renders: the full sample, and a lean one
    /// (no name, reward or tier, several coalesced events, the other branch of
    /// two-way kinds) so that an unguarded optional variable shows up too.
    fn check_variants(kind: EventKind) -> [TemplateContext; 2] {
        let full = Self::sample(kind);
        let mut lean = full.clone();
        lean.member_name = None;
        lean.next_reward = None;
        lean.tier = None;
        lean.coalesced = 3;
        match kind {
            EventKind::Adjusted => lean.points = -lean.points,
            EventKind::TierChanged => {
                lean.tier_from = Some("Gold".to_owned());
                lean.tier_to = None;
            }
            _ => {}
        }
        [full, lean]
    }
}

/// Variable names a template may use: top-level fields, and for object-valued fields
/// their attributes.
struct KnownVariables {
    fields: BTreeMap<String, Option<BTreeSet<String>>>,
    globals: BTreeSet<String>,
}

impl KnownVariables {
    fn new(env: &Environment<'static>) -> KnownVariables {
        // Derived from the serialised context so it cannot drift from the struct.
        let mut full = TemplateContext::sample(EventKind::Earned);
        full.tier_from = Some(String::new());
        full.tier_to = Some(String::new());
        full.reward_name = Some(String::new());
        full.expiry_date = Some(String::new());
        full.expiring_points = Some(0);
        full.pending_until = Some(String::new());
        let mut fields = BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&full) {
            for (name, value) in map {
                let attrs = match value {
                    serde_json::Value::Object(inner) => Some(inner.keys().cloned().collect()),
                    _ => None,
                };
                fields.insert(name, attrs);
            }
        }
        let globals = env.globals().map(|(name, _)| name.to_owned()).collect();
        KnownVariables { fields, globals }
    }

    /// Whether a (dotted) name from `undeclared_variables(true)` exists.
    fn allows(&self, path: &str) -> bool {
        let mut parts = path.split('.');
        let head = parts.next().unwrap_or_default();
        if self.globals.contains(head) {
            return true;
        }
        match (self.fields.get(head), parts.next()) {
            (None, _) => false,
            (Some(Some(attrs)), Some(attr)) => attrs.contains(attr),
            (Some(_), _) => true,
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Email subject, one line (`None` for SMS).
    pub subject: Option<String>,
    /// SMS body or plain-text email body, without trailing whitespace.
    pub body: String,
    /// HTML email body, if the kind has an HTML template.
    pub html: Option<String>,
}

/// Templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template directory or a file in it could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.j2` file in the template directory is not a known template name.
    #[error(
        "{}: unknown template file (expected <kind>.sms.j2, <kind>.email.subject.j2, \
         <kind>.email.txt.j2 or <kind>.email.html.j2, kind one of: {})",
        .path.display(),
        kind_names()
    )]
    UnknownFile {
        /// The file.
        path: PathBuf,
    },
    /// A template does not parse.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file (path of an override, or the name of a built-in default).
        file: String,
        /// Line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template failed to render (e.g. an undefined variable).
    #[error("{file}:{line}: cannot render: {message}")]
    Render {
        /// The file (path of an override, or the name of a built-in default).
        file: String,
        /// Line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn kind_names() -> String {
    EventKind::ALL
        .iter()
        .map(EventKind::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Describes a MiniJinja error without its location (reported separately).
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(source) = std::error::Error::source(e) {
        s.push_str(&format!(": {source}"));
    }
    s
}

/// What is wrong with one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Rendering the sample data failed.
    Render {
        /// Line of the error.
        line: usize,
        /// What failed.
        message: String,
    },
    /// The template uses a variable (or attribute) the context does not have.
    UndefinedVariable {
        /// The name as written, e.g. `ballance` or `next_reward.nmae`.
        name: String,
    },
    /// The SMS body needs more segments than allowed.
    TooManySegments {
        /// Segments of the longest rendering.
        segments: usize,
        /// The limit checked against.
        max: usize,
        /// Encoding the body needs.
        encoding: Encoding,
        /// Its length in septets (GSM-7) or UTF-16 units (UCS-2).
        units: usize,
    },
    /// The template renders to nothing but whitespace.
    Empty,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Render { line, message } => {
                write!(f, "line {line}: cannot render sample data: {message}")
            }
            Problem::UndefinedVariable { name } => write!(f, "unknown variable `{name}`"),
            Problem::TooManySegments {
                segments,
                max,
                encoding,
                units,
            } => {
                let unit = match encoding {
                    Encoding::Gsm7 => "septets",
                    Encoding::Ucs2 => "UTF-16 units",
                };
                write!(
                    f,
                    "SMS is {segments} segments ({encoding}, {units} {unit}) with sample data, \
                     at most {max} allowed"
                )?;
                if *encoding == Encoding::Ucs2 {
                    // The usual surprise: one curly quote or emoji more than halves the room.
                    f.write_str("; a character outside the GSM-7 alphabet forces UCS-2")?;
                }
                Ok(())
            }
            Problem::Empty => f.write_str("renders to an empty text"),
        }
    }
}

/// A problem found by [`Templates::check`], with the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Template file name, e.g. `earned.sms.j2`.
    pub file: String,
    /// Where the file was loaded from (`None`: the built-in default).
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.problem),
            None => write!(f, "{} (built-in): {}", self.file, self.problem),
        }
    }
}

/// `{{ n|plural("point") }}` → `1 point`, `120 points`; an irregular plural can be
/// passed as a second argument.
fn plural(n: i64, singular: &str, plural: Option<&str>) -> String {
    if n == 1 || n == -1 {
        format!("{n} {singular}")
    } else {
        match plural {
            Some(p) => format!("{n} {p}"),
            None => format!("{n} {singular}s"),
        }
    }
}

/// The loaded templates: embedded defaults, overridden file by file from a directory.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Environment<'static>,
    /// Templates read from the operator's directory, by file name.
    overrides: BTreeMap<String, PathBuf>,
}

impl Templates {
    /// Loads the embedded defaults, then every template file in `dir` over them.
    ///
    /// Fails if `dir` cannot be read, holds a `.j2` file that is not a template name
    /// (a typo would otherwise be silently ignored), or a template does not parse.
    /// Hidden files and files not ending in `.j2` are ignored.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut templates = Templates {
            env: environment(),
            overrides: BTreeMap::new(),
        };
        for (name, source) in EMBEDDED {
            templates
                .env
                .add_template(name, source)
                .map_err(|e| templates.syntax_error(&e, name))?;
        }
        if let Some(dir) = dir {
            for (name, path) in override_files(dir)? {
                let source =
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                        path: path.clone(),
                        source,
                    })?;
                templates.overrides.insert(name.clone(), path);
                templates
                    .env
                    .add_template_owned(name.clone(), source)
                    .map_err(|e| templates.syntax_error(&e, &name))?;
            }
        }
        Ok(templates)
    }

    /// Renders the message for `kind` on `channel`.
    ///
    /// SMS bodies, text bodies and subjects lose trailing whitespace; subjects are
    /// joined into one line. The SMS length is not checked here (see [`check`](Self::check)).
    pub fn render(
        &self,
        kind: EventKind,
        channel: Channel,
        ctx: &TemplateContext,
    ) -> Result<Rendered, TemplateError> {
        let ctx = Value::from_serialize(ctx);
        let part = |part: Part| {
            self.render_part(kind, part, &ctx)
                .map_err(|e| self.render_error(&e, &part.file(kind)))
        };
        Ok(match channel {
            Channel::Sms => Rendered {
                subject: None,
                body: part(Part::Sms)?,
                html: None,
            },
            Channel::Email => Rendered {
                subject: Some(part(Part::Subject)?),
                body: part(Part::Text)?,
                html: match self.has(kind, Part::Html) {
                    true => Some(part(Part::Html)?),
                    false => None,
                },
            },
        })
    }

    /// Renders every kind × channel template with sample data and reports what is
    /// wrong: render errors, unknown variables (also in branches the sample data does
    /// not reach), empty output, and SMS bodies needing more than `max_sms_segments`
    /// segments. Empty means all is well.
    pub fn check(&self, max_sms_segments: usize) -> Vec<TemplateProblem> {
        let known = KnownVariables::new(&self.env);
        let mut out = Vec::new();
        for &kind in EventKind::ALL {
            for part in Part::ALL.into_iter().filter(|&p| self.has(kind, p)) {
                let mut problems = Vec::new();
                let unknown = self.unknown_variables(&part.file(kind), &known);
                let found_unknown = !unknown.is_empty();
                problems.extend(
                    unknown
                        .into_iter()
                        .map(|name| Problem::UndefinedVariable { name }),
                );
                let mut worst: Option<segments::SmsLength> = None;
                let mut full_failed = false;
                for (i, ctx) in TemplateContext::check_variants(kind).iter().enumerate() {
                    match self.render_part(kind, part, &Value::from_serialize(ctx)) {
                        // Already reported by name, which says more than the line.
                        Err(e) if found_unknown && e.kind() == ErrorKind::UndefinedError => {}
                        Err(e) => {
                            let mut message = describe(&e);
                            full_failed |= i == 0;
                            if !full_failed && e.kind() == ErrorKind::UndefinedError {
                                // Only the lean sample failed: the usual cause.
                                message.push_str(
                                    " (with member_name, next_reward and tier none; \
                                     test optional values with {% if ... %} first)",
                                );
                            }
                            problems.push(Problem::Render {
                                line: e.line().unwrap_or(0),
                                message,
                            });
                        }
                        Ok(text) if text.trim().is_empty() => problems.push(Problem::Empty),
                        Ok(text) if part == Part::Sms => {
                            let len = segments::measure(&text);
                            if worst.is_none_or(|w| len.segments > w.segments) {
                                worst = Some(len);
                            }
                        }
                        Ok(_) => {}
                    }
                }
                if let Some(w) = worst.filter(|w| w.segments > max_sms_segments) {
                    problems.push(Problem::TooManySegments {
                        segments: w.segments,
                        max: max_sms_segments,
                        encoding: w.encoding,
                        units: w.units,
                    });
                }
                // Both sample variants often fail the same way; say it once.
                let mut seen = Vec::new();
                problems.retain(|p| {
                    let new = !seen.contains(p);
                    if new {
                        seen.push(p.clone());
                    }
                    new
                });
                let file = part.file(kind);
                let path = self.overrides.get(&file).cloned();
                out.extend(problems.into_iter().map(|problem| TemplateProblem {
                    file: file.clone(),
                    path: path.clone(),
                    problem,
                }));
            }
        }
        out
    }

    /// Whether `kind` has a template for `part`.
    fn has(&self, kind: EventKind, part: Part) -> bool {
        part.required() || self.overrides.contains_key(&part.file(kind))
    }

    fn render_part(
        &self,
        kind: EventKind,
        part: Part,
        ctx: &Value,
    ) -> Result<String, minijinja::Error> {
        let out = self.env.get_template(&part.file(kind))?.render(ctx)?;
        Ok(part.tidy(out))
    }

    /// Names used by a template that the context does not define, sorted.
    fn unknown_variables(&self, name: &str, known: &KnownVariables) -> Vec<String> {
        let Ok(template) = self.env.get_template(name) else {
            return Vec::new();
        };
        let names: BTreeSet<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !known.allows(v))
            .collect();
        names.into_iter().collect()
    }

    /// How to name a template in messages: its path if it came from the operator's
    /// directory, otherwise marked as built-in.
    fn label(&self, name: &str) -> String {
        match self.overrides.get(name) {
            Some(path) => path.display().to_string(),
            None => format!("{name} (built-in)"),
        }
    }

    fn syntax_error(&self, e: &minijinja::Error, name: &str) -> TemplateError {
        TemplateError::Syntax {
            file: self.label(e.name().unwrap_or(name)),
            line: e.line().unwrap_or(0),
            message: describe(e),
        }
    }

    fn render_error(&self, e: &minijinja::Error, name: &str) -> TemplateError {
        TemplateError::Render {
            file: self.label(e.name().unwrap_or(name)),
            line: e.line().unwrap_or(0),
            message: describe(e),
        }
    }
}

/// A MiniJinja environment set up for message templates.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Block tags on their own line leave no blank line behind, which keeps
    // multi-line text templates readable.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Only HTML is escaped: in an SMS or subject, "&amp;" would be wrong.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("plural", plural);
    env
}

/// Template files in `dir`, sorted by name, after checking that every `.j2` file
/// there is a known template.
fn override_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, TemplateError> {
    let io = |source| TemplateError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        // Hidden files are editor swap/lock files, not templates.
        if name.starts_with('.') || !name.ends_with(".j2") || path.is_dir() {
            continue;
        }
        files.push((name, path));
    }
    files.sort();
    if let Some((_, path)) = files.iter().find(|(n, _)| parse_file_name(n).is_none()) {
        return Err(TemplateError::UnknownFile { path: path.clone() });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, source) in files {
            std::fs::write(dir.path().join(name), source).expect("write template");
        }
        dir
    }

    fn load_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Templates, TemplateError>) {
        let dir = dir_with(files);
        let loaded = Templates::load(Some(dir.path()));
        (dir, loaded)
    }

    fn defaults() -> Templates {
        Templates::load(None).expect("embedded defaults load")
    }

    #[test]
    fn every_embedded_default_renders_for_every_kind_and_channel_and_passes_check() {
        let t = defaults();
        for &kind in EventKind::ALL {
            let ctx = TemplateContext::sample(kind);
            let sms = t.render(kind, Channel::Sms, &ctx).expect("sms renders");
            assert!(!sms.body.is_empty(), "{kind}");
            assert_eq!(sms.subject, None);
            let email = t.render(kind, Channel::Email, &ctx).expect("email renders");
            assert!(!email.subject.unwrap_or_default().is_empty(), "{kind}");
            assert!(email.body.contains(&ctx.shop_name), "{kind}");
            assert_eq!(email.html, None, "no HTML default: {kind}");
        }
        assert_eq!(t.check(2), Vec::new());
    }

    #[test]
    fn every_default_sms_is_one_gsm7_segment_with_sample_data() {
        let t = defaults();
        for &kind in EventKind::ALL {
            for ctx in TemplateContext::check_variants(kind) {
                let body = t.render(kind, Channel::Sms, &ctx).expect("renders").body;
                let len = segments::measure(&body);
                println!("{kind:>20}: {len:?} {body}");
                assert_eq!(len.encoding, Encoding::Gsm7, "{kind}: {body}");
                assert_eq!(len.segments, 1, "{kind}: {body}");
            }
        }
        assert_eq!(t.check(1), Vec::new());
    }

    #[test]
    fn the_config_directory_holds_exactly_the_embedded_defaults() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/templates");
        let t = Templates::load(Some(&dir)).expect("config/templates loads");
        for &kind in EventKind::ALL {
            for part in Part::ALL.into_iter().filter(|p| p.required()) {
                let name = part.file(kind);
                let embedded = EMBEDDED.iter().find(|(n, _)| *n == name);
                let on_disk = std::fs::read_to_string(dir.join(&name)).expect("file exists");
                assert_eq!(embedded.map(|(_, s)| *s), Some(on_disk.as_str()), "{name}");
            }
        }
        assert_eq!(EMBEDDED.len(), EventKind::ALL.len() * 3);
        assert_eq!(t.overrides.len(), EMBEDDED.len());
    }

    #[test]
    fn an_override_directory_replaces_one_template_and_keeps_the_others() {
        let (_dir, t) = load_with(&[(
            "earned.sms.j2",
            "{{ shop_name }} thanks you: +{{ points }}\n\n",
        )]);
        let t = t.expect("loads");
        let ctx = TemplateContext::sample(EventKind::Earned);
        let sms = t
            .render(EventKind::Earned, Channel::Sms, &ctx)
            .expect("renders");
        assert_eq!(sms.body, "Corner Bakery & Cafe thanks you: +120");
        let email = t
            .render(EventKind::Earned, Channel::Email, &ctx)
            .expect("renders");
        assert_eq!(
            email.subject.as_deref(),
            Some("You earned 120 points at Corner Bakery & Cafe")
        );
        let other = t
            .render(
                EventKind::Bonus,
                Channel::Sms,
                &TemplateContext::sample(EventKind::Bonus),
            )
            .expect("renders");
        assert_eq!(
            other,
            defaults()
                .render(
                    EventKind::Bonus,
                    Channel::Sms,
                    &TemplateContext::sample(EventKind::Bonus)
                )
                .expect("renders")
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let (dir, t) = load_with(&[(
            "bonus.email.txt.j2",
            "Hi,\n\nyou got {{ points }}\n{% if balance %}\nmore\n",
        )]);
        let err = t.expect_err("unclosed if");
        let path = dir.path().join("bonus.email.txt.j2");
        match &err {
            TemplateError::Syntax { file, line, .. } => {
                assert_eq!(file, &path.display().to_string());
                assert!(*line >= 4, "line {line}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("bonus.email.txt.j2:"), "{text}");
    }

    #[test]
    fn a_syntax_error_on_a_given_line_reports_that_line() {
        let (_dir, t) = load_with(&[("expired.sms.j2", "line one\nline two {{ points }\n")]);
        match t.expect_err("bad tag") {
            TemplateError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn an_undefined_variable_is_reported() {
        let (dir, t) = load_with(&[
            ("earned.sms.j2", "{{ shop_name }}: balance {{ ballance }}"),
            // Typos in a branch the sample data does not take, and in an attribute.
            (
                "bonus.sms.j2",
                "Bonus{% if coalesced > 99 %}{{ pionts }}{% endif %}{% if next_reward %}{{ next_reward.nmae }}{% endif %}",
            ),
        ]);
        let t = t.expect("loads");
        let problems = t.check(2);
        let undefined: Vec<(&str, &str)> = problems
            .iter()
            .filter_map(|p| match &p.problem {
                Problem::UndefinedVariable { name } => Some((p.file.as_str(), name.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            undefined,
            vec![
                ("earned.sms.j2", "ballance"),
                ("bonus.sms.j2", "next_reward.nmae"),
                ("bonus.sms.j2", "pionts"),
            ]
        );
        // Reported by name only, not again as a render error.
        assert_eq!(problems.len(), 3, "{problems:#?}");
        let shown = problems[0].to_string();
        let path = dir.path().join("earned.sms.j2").display().to_string();
        assert!(
            shown.starts_with(&path) && shown.contains("`ballance`"),
            "{shown}"
        );

        let err = t
            .render(
                EventKind::Earned,
                Channel::Sms,
                &TemplateContext::sample(EventKind::Earned),
            )
            .expect_err("strict undefined");
        assert!(
            matches!(&err, TemplateError::Render { file, line: 1, .. } if *file == path),
            "{err:?}"
        );
    }

    #[test]
    fn an_unguarded_optional_variable_fails_check() {
        let (_dir, t) = load_with(&[(
            "expired.sms.j2",
            "{{ shop_name }}: {{ next_reward.missing }} more for {{ next_reward.name }}",
        )]);
        let problems = t.expect("loads").check(2);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].file, "expired.sms.j2");
        assert!(
            matches!(&problems[0].problem, Problem::Render { line: 1, message } if message.contains("{% if")),
            "{problems:#?}"
        );
    }

    #[test]
    fn an_sms_that_renders_to_three_segments_fails_check_with_the_count() {
        let long = format!("{{{{ shop_name }}}} {}", "x".repeat(300));
        let (_dir, t) = load_with(&[("matured.sms.j2", &long)]);
        let problems = t.expect("loads").check(2);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].file, "matured.sms.j2");
        assert_eq!(
            problems[0].problem,
            Problem::TooManySegments {
                segments: 3,
                max: 2,
                encoding: Encoding::Gsm7,
                units: 321,
            }
        );
        assert!(problems[0]
            .to_string()
            .contains("3 segments (GSM-7, 321 septets)"));
    }

    #[test]
    fn a_curly_quote_is_reported_as_ucs2() {
        let body = format!("{{{{ shop_name }}}}: you\u{2019}ve {}", "x".repeat(120));
        let (_dir, t) = load_with(&[("bonus.sms.j2", &body)]);
        let problems = t.expect("loads").check(1);
        assert!(
            matches!(
                problems.as_slice(),
                [TemplateProblem {
                    problem: Problem::TooManySegments {
                        segments: 3,
                        encoding: Encoding::Ucs2,
                        ..
                    },
                    ..
                }]
            ),
            "{problems:#?}"
        );
        assert!(problems[0].to_string().contains("forces UCS-2"));
    }

    #[test]
    fn an_empty_template_is_reported() {
        let (_dir, t) = load_with(&[("adjusted.email.subject.j2", "{% if false %}x{% endif %}\n")]);
        let problems = t.expect("loads").check(2);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].problem, Problem::Empty);
        assert_eq!(problems[0].file, "adjusted.email.subject.j2");
    }

    #[test]
    fn html_escapes_member_name_but_text_does_not() {
        let (_dir, t) = load_with(&[(
            "earned.email.html.j2",
            "<p>Hi {{ member_name or \"there\" }}, {{ shop_name }}</p>",
        )]);
        let t = t.expect("loads");
        let mut ctx = TemplateContext::sample(EventKind::Earned);
        ctx.member_name = Some("<b>Tom</b>".to_owned());
        let email = t
            .render(EventKind::Earned, Channel::Email, &ctx)
            .expect("renders");
        assert_eq!(
            email.html.as_deref(),
            Some("<p>Hi &lt;b&gt;Tom&lt;&#x2f;b&gt;, Corner Bakery &amp; Cafe</p>")
        );
        assert!(email.body.starts_with("Hi <b>Tom</b>,\n"), "{}", email.body);
        assert!(email.body.contains("Corner Bakery & Cafe"));
        let sms = t
            .render(EventKind::Earned, Channel::Sms, &ctx)
            .expect("renders");
        assert!(
            sms.body.starts_with("Corner Bakery & Cafe:"),
            "{}",
            sms.body
        );
        assert_eq!(t.check(2), Vec::new());
    }

    #[test]
    fn an_unknown_file_in_the_directory_is_rejected() {
        let (dir, t) = load_with(&[
            ("earned.sms.j2", "ok {{ points }}"),
            ("earnd.email.txt.j2", "typo"),
        ]);
        let err = t.expect_err("typo rejected");
        assert!(
            matches!(&err, TemplateError::UnknownFile { path } if *path == dir.path().join("earnd.email.txt.j2")),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("earnd.email.txt.j2") && text.contains("redemption_returned"),
            "{text}"
        );
    }

    #[test]
    fn other_and_hidden_files_in_the_directory_are_ignored() {
        let (_dir, t) = load_with(&[
            ("README.md", "notes"),
            (".earned.sms.j2.swp", "junk"),
            (".#earned.sms.j2", "junk"),
            ("earned.sms.j2~", "backup"),
        ]);
        assert!(t.expect("loads").overrides.is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("nope");
        let err = Templates::load(Some(&missing)).expect_err("missing dir");
        assert!(
            matches!(&err, TemplateError::Io { path, .. } if *path == missing),
            "{err:?}"
        );
    }

    #[test]
    fn subjects_are_one_line_and_sms_bodies_lose_trailing_whitespace() {
        let (_dir, t) = load_with(&[
            ("bonus.email.subject.j2", "  Bonus\n  {{ points }}\r\n\n"),
            ("bonus.sms.j2", "Bonus {{ points }} \n\n"),
        ]);
        let t = t.expect("loads");
        let ctx = TemplateContext::sample(EventKind::Bonus);
        let email = t
            .render(EventKind::Bonus, Channel::Email, &ctx)
            .expect("renders");
        assert_eq!(email.subject.as_deref(), Some("Bonus 200"));
        let sms = t
            .render(EventKind::Bonus, Channel::Sms, &ctx)
            .expect("renders");
        assert_eq!(sms.body, "Bonus 200");
    }

    #[test]
    fn plural_says_one_point_and_many_points() {
        assert_eq!(plural(1, "point", None), "1 point");
        assert_eq!(plural(-1, "point", None), "-1 point");
        assert_eq!(plural(0, "point", None), "0 points");
        assert_eq!(plural(120, "point", None), "120 points");
        assert_eq!(plural(2, "berry", Some("berries")), "2 berries");
        assert_eq!(
            plural(i64::MIN, "point", None),
            format!("{} points", i64::MIN)
        );
    }

    #[test]
    fn coalesced_and_negative_adjustments_read_naturally() {
        let t = defaults();
        let mut ctx = TemplateContext::sample(EventKind::Earned);
        ctx.points = 1;
        ctx.coalesced = 3;
        ctx.next_reward = None;
        let sms = t
            .render(EventKind::Earned, Channel::Sms, &ctx)
            .expect("renders");
        assert_eq!(
            sms.body,
            "Corner Bakery & Cafe: you earned 1 point on 3 visits. Balance 1450. Reply STOP to opt out."
        );
        let mut ctx = TemplateContext::sample(EventKind::Adjusted);
        ctx.points = -50;
        let sms = t
            .render(EventKind::Adjusted, Channel::Sms, &ctx)
            .expect("renders");
        assert!(
            sms.body.contains("we removed 50 points from your account"),
            "{}",
            sms.body
        );
    }

    #[test]
    fn event_kind_names_match_serde_and_parse_back() {
        for &kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("serialises"),
                serde_json::Value::String(kind.name().to_owned())
            );
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(
            parse_file_name("redemption_returned.email.html.j2"),
            Some((EventKind::RedemptionReturned, Part::Html))
        );
        assert_eq!(parse_file_name("earned.email.j2"), None);
    }
}
