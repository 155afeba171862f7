//! What one step of an ad-hoc command (XEP-0050) asks for, from its `action` and the type of
//! the data form it carries. Both commands are stateless: a step either shows the form,
//! acts on a submitted one, or ends.

/// How a command step is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No form yet, or `prev`: show the command's form (its first and only step).
    ShowForm,
    /// A submitted form (`type='submit'`) with `execute` (the offered `complete`) or
    /// `complete`: act on it.
    Submit,
    /// `action='cancel'`, or a form of `type='cancel'`: end without changing anything.
    Cancel,
    /// An action the command does not offer (`next`, or one XEP-0050 does not define):
    /// `bad-request` with `<bad-action/>`.
    BadAction,
    /// A form that is not a submission (`form`, `result`, no type): `bad-request`.
    NotSubmitted,
}

/// `action` as the request names it (XEP-0050's default is `execute`), and the `type` of its
/// `<x xmlns='jabber:x:data'/>`, if it carries one (`Some("")` for a form without a type).
pub fn step_of(action: &str, form_type: Option<&str>) -> Step {
    match (action, form_type) {
        ("cancel", _) | (_, Some("cancel")) => Step::Cancel,
        ("prev", _) | ("execute" | "complete", None) => Step::ShowForm,
        ("execute" | "complete", Some("submit")) => Step::Submit,
        ("execute" | "complete", Some(_)) => Step::NotSubmitted,
        // `next` included: both commands have one step and offer `complete` only.
        _ => Step::BadAction,
    }
}

impl Step {
    /// The text of the error a step is refused with, if it is.
    pub fn error_text(self) -> Option<&'static str> {
        match self {
            Step::BadAction => Some("Unknown command action"),
            Step::NotSubmitted => Some("Only a submitted form (type 'submit') can be acted on"),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::ShowForm => "show-form",
            Step::Submit => "submit",
            Step::Cancel => "cancel",
            Step::BadAction => "bad-action",
            Step::NotSubmitted => "not-submitted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_xep_0050() {
        assert_eq!(step_of("execute", None), Step::ShowForm);
        assert_eq!(step_of("complete", None), Step::ShowForm);
        assert_eq!(step_of("execute", Some("submit")), Step::Submit);
        assert_eq!(step_of("complete", Some("submit")), Step::Submit);
        assert_eq!(step_of("next", Some("submit")), Step::BadAction, "not offered");
        assert_eq!(step_of("prev", Some("submit")), Step::ShowForm, "prev goes back, whatever it carries");
        assert_eq!(step_of("cancel", Some("submit")), Step::Cancel);
        assert_eq!(step_of("execute", Some("cancel")), Step::Cancel);
        assert_eq!(step_of("complete", Some("result")), Step::NotSubmitted);
        assert_eq!(step_of("complete", Some("form")), Step::NotSubmitted);
        assert_eq!(step_of("complete", Some("")), Step::NotSubmitted);
        assert_eq!(step_of("explode", Some("submit")), Step::BadAction);
        assert_eq!(step_of("", None), Step::BadAction);
        assert!(Step::BadAction.error_text().is_some() && Step::Submit.error_text().is_none());
    }
}
