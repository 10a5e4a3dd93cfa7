//! What `-w` and `-D` write besides the bodies: where standard output stands ([`Stdout`]), and
//! each response head `-D` writes ([`CliDelegate::dump_head`]). The `-w` line itself is made in
//! `did_complete` (`write_out.rs` renders it).

use std::io::Write;

use courier_engine::Response;
use courier_engine::reexports::bytes::Bytes;

use super::{CliDelegate, Inner, head_text};
use crate::Failure;
use crate::cli::Options;

/// What standard output holds, for what `-w` and `-D -` write there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// The bodies (`get` without `-o`, `upload`): a task's lines go with its body, in order.
    Bodies,
    /// Nothing else: the bodies go to files.
    Apart,
}

/// Where `-D` writes response heads.
pub(super) enum Dump {
    /// Standard output, which holds the bodies: with each task's body, before it.
    WithBodies,
    /// A file, or standard output apart from the bodies.
    To(Box<dyn Write + Send>),
}

impl CliDelegate {
    /// `-w` and `-D`: what they write, given what standard output holds (once
    /// [`CliDelegate::apply`] has run).
    ///
    /// # Errors
    /// The `-D` file cannot be created.
    pub(crate) fn report_to(&mut self, options: &Options, stdout: Stdout) -> Result<(), Failure> {
        self.write_out = options.write_out.clone().map(|w| (w, stdout));
        let dump = match options.dump_header.as_deref() {
            None => None,
            Some(path) if path.as_os_str() == "-" => Some(match stdout {
                Stdout::Bodies => Dump::WithBodies,
                Stdout::Apart => Dump::To(Box::new(std::io::stdout())),
            }),
            Some(path) => Some(Dump::To(Box::new(
                crate::common::create_output(path).map_err(|e| {
                    Failure::usage(format!("cannot create {}: {e}", path.display()))
                })?,
            ))),
        };
        self.dumps = dump.is_some();
        self.inner().dump = dump;
        Ok(())
    }

    /// `-D`: writes `response`'s head, once for a task's final response (`last`).
    pub(super) fn dump_head(&self, inner: &mut Inner, task: u64, response: &Response, last: bool) {
        if !self.dumps || (last && !inner.dumped.insert(task)) {
            return;
        }
        let head = Bytes::from(head_text(response));
        let written = match &mut inner.dump {
            Some(Dump::WithBodies) => inner.with_body(task, &head),
            Some(Dump::To(out)) => out.write_all(&head).and_then(|()| out.flush()),
            None => Ok(()),
        };
        self.note_output_error(written);
    }
}
