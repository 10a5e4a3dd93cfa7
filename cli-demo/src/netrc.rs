//! `-n` (`--netrc`), `--netrc-file FILE` and `--netrc-optional`: logins from a `.netrc` file, as
//! curl, wget and ftp read it. Each `machine` line's login answers that host's challenges (and is
//! an `ftp:` server's login), whichever URL or redirect leads there; `default` answers any other
//! host. `--user` wins over the file.
//!
//! The format: tokens separated by white space, `machine NAME`, `default`, `login NAME`,
//! `password WORD`, `account WORD` (read and ignored), `macdef NAME` (a macro, to the next empty
//! line: skipped); a token may be double-quoted, with `\` escaping the next character.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::Failure;
use crate::cli::Options;

/// The longest `.netrc` read: a file larger than this is not a list of logins.
const LONGEST: u64 = 1 << 20;

/// A login: its name and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) password: String,
}

/// The logins of a `.netrc` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Netrc {
    machines: Vec<(String, Login)>,
    default: Option<Login>,
}

impl Netrc {
    /// The login for `host`: its `machine`'s (the first, in any case), else `default`'s.
    pub(crate) fn login_for(&self, host: &str) -> Option<&Login> {
        self.machines
            .iter()
            .find(|(machine, _)| machine.eq_ignore_ascii_case(host))
            .map(|(_, login)| login)
            .or(self.default.as_ref())
    }

    /// Reads the logins of `text`. A `machine` without a login is left out.
    pub(crate) fn parse(text: &str) -> Netrc {
        let mut netrc = Netrc::default();
        let mut tokens = Tokens { rest: text };
        // The entry being read: its machine (`None` for `default`), login and password.
        let mut entry: Option<Entry> = None;
        while let Some(token) = tokens.next() {
            match token.as_str() {
                "machine" => {
                    netrc.close(entry.take());
                    entry = tokens.next().map(|name| (Some(name), None, None));
                }
                "default" => {
                    netrc.close(entry.take());
                    entry = Some((None, None, None));
                }
                "login" => {
                    let value = tokens.next();
                    if let Some(e) = &mut entry {
                        e.1 = value;
                    }
                }
                "password" => {
                    let value = tokens.next();
                    if let Some(e) = &mut entry {
                        e.2 = value;
                    }
                }
                "account" => {
                    tokens.next();
                }
                "macdef" => {
                    netrc.close(entry.take());
                    tokens.skip_macro();
                }
                _ => {}
            }
        }
        netrc.close(entry);
        netrc
    }
}

/// An entry being read: its machine (`None` for `default`), login and password.
type Entry = (Option<String>, Option<String>, Option<String>);

impl Netrc {
    /// Keeps the entry read, if it has a login; the first `default` counts.
    fn close(&mut self, entry: Option<Entry>) {
        if let Some((machine, Some(user), password)) = entry {
            let login = Login {
                user,
                password: password.unwrap_or_default(),
            };
            match machine {
                Some(machine) => self.machines.push((machine, login)),
                None => {
                    self.default.get_or_insert(login);
                }
            }
        }
    }
}

/// The tokens of a `.netrc` text.
struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn next(&mut self) -> Option<String> {
        self.rest = self.rest.trim_start();
        let mut chars = self.rest.char_indices();
        let (_, first) = chars.next()?;
        let mut token = String::new();
        if first == '"' {
            let mut escaped = false;
            for (i, c) in chars {
                match c {
                    _ if escaped => {
                        token.push(c);
                        escaped = false;
                    }
                    '\\' => escaped = true,
                    '"' => {
                        self.rest = &self.rest[i + 1..];
                        return Some(token);
                    }
                    c => token.push(c),
                }
            }
            self.rest = "";
            return Some(token);
        }
        let end = self
            .rest
            .find(char::is_whitespace)
            .unwrap_or(self.rest.len());
        token.push_str(&self.rest[..end]);
        self.rest = &self.rest[end..];
        Some(token)
    }

    /// Skips a macro: its name's line, then every line up to an empty one.
    fn skip_macro(&mut self) {
        match self.rest.find("\n\n") {
            Some(at) => self.rest = &self.rest[at + 2..],
            None => self.rest = "",
        }
    }
}

/// The `.netrc` the options name: `--netrc-file FILE` (which must be there), or with `-n` or
/// `--netrc-optional` the one in the home directory, if there is one.
///
/// # Errors
/// `--netrc-file` names a file that cannot be read, or one larger than 1 MiB.
pub(crate) fn load(options: &Options) -> Result<Option<Netrc>, Failure> {
    let path = match (&options.netrc_file, options.netrc || options.netrc_optional) {
        (Some(file), _) => file.clone(),
        (None, true) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".netrc"),
            None => return Ok(None),
        },
        (None, false) => return Ok(None),
    };
    match read(&path) {
        Ok(text) => Ok(Some(Netrc::parse(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && options.netrc_file.is_none() => {
            Ok(None)
        }
        Err(e) => Err(Failure::usage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The file's text, at most [`LONGEST`] bytes. (A link is followed: a `.netrc` kept with the
/// other dotfiles is often one.)
fn read(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(LONGEST + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LONGEST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 1 MiB: not a list of logins",
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, password: &str) -> Option<Login> {
        Some(Login {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn machines_default_and_macros_are_read_as_curl_reads_them() {
        let netrc = Netrc::parse(
            "machine files.test login ann password s3cret\n\
             macdef init\ncd /pub\nmachine evil.test login mallory password x\n\n\
             machine \"quoted.test\" login \"bob smith\" password \"p\\\"w d\" account a1\n\
             machine nologin.test password lonely\n\
             default login anonymous password me@home\n",
        );
        assert_eq!(
            netrc.login_for("FILES.test").cloned(),
            login("ann", "s3cret")
        );
        assert_eq!(
            netrc.login_for("quoted.test").cloned(),
            login("bob smith", "p\"w d")
        );
        // Inside the macro: not a machine. Without a login: not one either.
        assert_eq!(
            netrc.login_for("evil.test").cloned(),
            login("anonymous", "me@home")
        );
        assert_eq!(
            netrc.login_for("nologin.test").cloned(),
            login("anonymous", "me@home")
        );
        assert_eq!(
            Netrc::parse("machine a login u").login_for("a").cloned(),
            login("u", "")
        );
        assert_eq!(Netrc::parse("machine a login u").login_for("b"), None);
    }

    /// Texts of the format's words, quotes, escapes, spaces and any other character.
    const ANY_NETRC: &str = "(machine|login|password|default|macdef|\"|\\\\|\\s|\\PC){0,60}";

    proptest::proptest! {
        /// Any text: some logins or none, never a panic.
        #[test]
        fn any_text_reads(text in ANY_NETRC) {
            let _ = Netrc::parse(&text).login_for("a");
        }
    }
}
