//! What a check of the run found: a target, the figure measured against it, and the verdict
//! (PASS, FAIL, or n/a when the run did not measure it). A leaf: the results carry checks,
//! and `checks` makes them from the results.

use serde::Serialize;

/// PASS, FAIL or not measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "n/a")]
    NotMeasured,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotMeasured => "n/a",
        }
    }

    pub(crate) fn of(ok: bool) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Fail }
    }
}

/// One target and how the run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
    /// Conditions that differ from the target's, or why it was not measured.
    pub note: String,
}
