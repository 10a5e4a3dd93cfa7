//! `multipart/x-mixed-replace` for data tasks with a delegate: every part is a response of its own
//! (`did_receive_response`, answered before its body flows), then its data.

use courier_delegates::{Error, ErrorCode, Response, ResponseDisposition};
use courier_protocol_http::multipart::{MixedReplace, PartEvent};
use http::{StatusCode, Version};
use tokio::sync::oneshot;

use super::{Halt, ResponseBody, Run, TaskMsg, unless_stopped};

impl Run {
    /// Splits the body into parts as it arrives and hands each to the delegate as a response.
    pub(super) async fn receive_parts(
        &mut self,
        mut body: ResponseBody,
        boundary: &str,
        version: Version,
    ) -> Result<(), Halt> {
        let mut parser = MixedReplace::new(boundary);
        let mut first = true;
        loop {
            self.wait_until(|g| !g.paused).await?;
            let frame = match self.timed(std::pin::pin!(body.frame())).await? {
                None => return Ok(()),
                Some(Err(e)) => return Err(Halt::Failed(e.into_error(&self.url))),
                Some(Ok(frame)) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.moved.wire_in += data.len() as u64;
            let events = parser.feed(&data).map_err(|e| {
                Error::new(ErrorCode::CannotParseResponse, e.to_string())
                    .with_url(self.url.as_str())
                    .with_source(e)
            })?;
            for event in events {
                match event {
                    PartEvent::Part(headers) => {
                        let response =
                            Response::new(self.url.clone(), StatusCode::OK, version, headers);
                        if first {
                            // The first part goes the usual way: the machine waits for the answer.
                            first = false;
                            self.present(response).await?;
                        } else {
                            let (tx, rx) = oneshot::channel();
                            if self
                                .actor
                                .cast(TaskMsg::PartResponse(response, tx))
                                .is_err()
                            {
                                return Err(Halt::Interrupted);
                            }
                            let answer = unless_stopped(&mut self.gate, rx).await?;
                            if answer == Ok(ResponseDisposition::Cancel) {
                                return Err(Halt::Failed(Error::cancelled(
                                    self.info.original_request().url_str(),
                                )));
                            }
                        }
                    }
                    PartEvent::Data(bytes) => self.deliver(bytes).await?,
                    PartEvent::End => return Ok(()),
                }
            }
        }
    }
}
