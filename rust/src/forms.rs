//! The two ad-hoc commands (XEP-0050) as people see them: their names and nodes, their data
//! forms (XEP-0004) described as data, and the short answers they end with. The Lua module
//! turns a [`Form`] into util.dataforms and acts on what comes back.

use crate::listing::Entry;
use crate::text::describe_entry;

pub const XMLNS_MANAGE_CLIENTS: &str = "xmpp:prosody.im/protocol/manage-clients";

/// A command the module offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    ManageClients,
    SignOutOthers,
}

impl Command {
    pub const ALL: [Command; 2] = [Command::ManageClients, Command::SignOutOthers];

    /// The name the Lua side knows the command by (and its handler).
    pub fn key(self) -> &'static str {
        match self {
            Command::ManageClients => "manage",
            Command::SignOutOthers => "sign-out-others",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// Its name in command lists (disco#items, mod_adhoc).
    pub fn name(self) -> &'static str {
        match self {
            Command::ManageClients => "Manage clients",
            Command::SignOutOthers => "Sign out all other clients",
        }
    }

    pub fn node(self) -> String {
        match self {
            Command::ManageClients => format!("{XMLNS_MANAGE_CLIENTS}#manage"),
            Command::SignOutOthers => format!("{XMLNS_MANAGE_CLIENTS}#sign-out-others"),
        }
    }
}

/// An option of a list field: what people read, and the value sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub label: String,
    pub value: String,
}

/// The choices of "Manage clients": each listed client, by its listed id.
pub fn client_choices(entries: &[Entry]) -> Vec<Choice> {
    entries.iter().map(|entry| Choice { label: describe_entry(entry), value: entry.listed_id() }).collect()
}

/// A field of a form, as util.dataforms lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub var: &'static str,
    /// `hidden`, `boolean`, `list-multi`, ….
    pub kind: &'static str,
    pub label: Option<String>,
    pub value: Option<String>,
    pub options: Option<Vec<Choice>>,
}

/// A data form of type `form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub title: &'static str,
    pub instructions: &'static str,
    pub fields: Vec<Field>,
}

fn form_type(command: Command) -> Field {
    Field { var: "FORM_TYPE", kind: "hidden", label: None, value: Some(command.node()), options: None }
}

/// "Manage clients": the listed clients (`choices`), to pick those to cut off.
pub fn manage_form(choices: Vec<Choice>) -> Form {
    Form {
        title: "Manage clients",
        instructions: "These clients have access to your account. Pick those to cut off.",
        fields: vec![
            form_type(Command::ManageClients),
            Field { var: "revoke", kind: "list-multi", label: Some("Revoke access of".to_owned()), value: None, options: Some(choices) },
        ],
    }
}

/// "Sign out all other clients": one yes/no, labelled with what it would do (`question`,
/// see [`crate::text::sign_out_question`]); without a plan yet, the command's name.
pub fn sign_out_form(question: Option<String>) -> Form {
    Form {
        title: "Sign out all other clients",
        instructions: "Every other client loses its access (apps that know your password can log in again until \
                       you change it), and every other connection is closed.",
        fields: vec![
            form_type(Command::SignOutOthers),
            Field {
                var: "confirm",
                kind: "boolean",
                label: Some(question.unwrap_or_else(|| Command::SignOutOthers.name().to_owned())),
                value: None,
                options: None,
            },
        ],
    }
}

/// How a command ends without an error: its level (`info`, `warn`, `error`) and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    pub level: &'static str,
    pub text: &'static str,
}

impl Note {
    /// The note the Lua module names `nothing-changed`, `unreadable` or `failed`.
    pub fn named(name: &str) -> Option<Note> {
        match name {
            "nothing-changed" => Some(NOTHING_CHANGED),
            "unreadable" => Some(UNREADABLE),
            "failed" => Some(FAILED),
            _ => None,
        }
    }
}

/// "Sign out all other clients" submitted without confirming.
pub const NOTHING_CHANGED: Note = Note { level: "info", text: "Nothing was changed." };
/// The account's clients could not be read from storage.
pub const UNREADABLE: Note = Note { level: "error", text: "Your clients could not be read; try again later." };
/// The request broke off (the server's log says why): what it did is not known to be complete.
pub const FAILED: Note = Note { level: "error", text: "Your request could not be completed; try again later." };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_by_key() {
        for command in Command::ALL {
            assert_eq!(Command::from_key(command.key()), Some(command));
        }
        assert_eq!(Command::from_key("x"), None);
        assert_eq!(Command::ManageClients.node(), "xmpp:prosody.im/protocol/manage-clients#manage");
        assert_eq!(Command::SignOutOthers.node(), "xmpp:prosody.im/protocol/manage-clients#sign-out-others");
    }

    #[test]
    fn forms_carry_their_form_type_and_one_field() {
        let form = manage_form(vec![Choice { label: "Gajim".into(), value: "client/a".into() }]);
        assert_eq!(form.fields[0].var, "FORM_TYPE");
        assert_eq!(form.fields[0].value.as_deref(), Some("xmpp:prosody.im/protocol/manage-clients#manage"));
        assert_eq!(form.fields[1].options.as_ref().map(Vec::len), Some(1));
        let form = sign_out_form(Some("Sign out 2 other client(s) and close 1 other connection(s)".into()));
        assert_eq!(form.fields[1].var, "confirm");
        assert_eq!(form.fields[1].label.as_deref(), Some("Sign out 2 other client(s) and close 1 other connection(s)"));
        assert_eq!(sign_out_form(None).fields[1].label.as_deref(), Some("Sign out all other clients"));
        assert!(form.instructions.contains("can log in again until you change it), and"));
        assert_eq!(Note::named("unreadable"), Some(UNREADABLE));
        assert_eq!(Note::named("nothing-changed").map(|n| n.level), Some("info"));
        assert_eq!(Note::named("x"), None);
    }
}
