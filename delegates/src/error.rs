//! `Error` and `ErrorCode`: how a task fails, named and numbered as Darwin's `NSURLErrorDomain`.
//!
//! The numbers are Darwin's (not the Linux port's, whose TLS codes are shifted by one), so code written
//! against URLSession's documentation reads the same here.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::ResumeData;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $number:literal, $name:literal; )*) => {
        /// Why a task failed: the `NSURLErrorDomain` codes, with Darwin's names and numbers.
        ///
        /// HTTP error statuses (4xx, 5xx) are not errors: such a task completes without one and carries
        /// the response.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// Darwin's numeric value (`-999` for [`ErrorCode::Cancelled`]).
            pub fn number(self) -> i32 {
                match self { $( ErrorCode::$variant => $number, )* }
            }

            /// The name in snake case, as the `courier` event stream writes it (`timed_out`).
            pub fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The code with this Darwin number, if there is one.
            pub fn from_number(number: i32) -> Option<ErrorCode> {
                match number { $( $number => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    /// An otherwise unmapped transport failure.
    Unknown = -1, "unknown";
    /// `cancel()`, `invalidate_and_cancel()`, the cancel response disposition, a dropped future.
    Cancelled = -999, "cancelled";
    /// A background session's container is missing.
    BackgroundSessionRequiresSharedContainer = -995, "background_session_requires_shared_container";
    /// A background session's identifier is in use by another process.
    BackgroundSessionInUseByAnotherProcess = -996, "background_session_in_use_by_another_process";
    /// The background service went away.
    BackgroundSessionWasDisconnected = -997, "background_session_was_disconnected";
    /// A malformed URL, a port out of range, or an http(s) URL without a host.
    BadUrl = -1000, "bad_url";
    /// The idle (request) timeout, the resource timeout or the connect timeout expired.
    TimedOut = -1001, "timed_out";
    /// No protocol handles the URL's scheme.
    UnsupportedUrl = -1002, "unsupported_url";
    /// The host name did not resolve.
    CannotFindHost = -1003, "cannot_find_host";
    /// The connection was refused or could not be made.
    CannotConnectToHost = -1004, "cannot_connect_to_host";
    /// The connection broke during the transfer.
    NetworkConnectionLost = -1005, "network_connection_lost";
    /// Legacy DNS failure.
    DnsLookupFailed = -1006, "dns_lookup_failed";
    /// More redirects than the configured limit.
    HttpTooManyRedirects = -1007, "http_too_many_redirects";
    /// The resource is unavailable.
    ResourceUnavailable = -1008, "resource_unavailable";
    /// No route to the network.
    NotConnectedToInternet = -1009, "not_connected_to_internet";
    /// A redirect pointed nowhere.
    RedirectToNonExistentLocation = -1010, "redirect_to_non_existent_location";
    /// The server sent nothing usable (closed before a complete response head).
    BadServerResponse = -1011, "bad_server_response";
    /// Authentication was cancelled at a lower layer.
    UserCancelledAuthentication = -1012, "user_cancelled_authentication";
    /// Authentication was needed but could not be supplied.
    UserAuthenticationRequired = -1013, "user_authentication_required";
    /// The resource has no bytes.
    ZeroByteResource = -1014, "zero_byte_resource";
    /// Raw data could not be decoded.
    CannotDecodeRawData = -1015, "cannot_decode_raw_data";
    /// A content-encoded body could not be decoded.
    CannotDecodeContentData = -1016, "cannot_decode_content_data";
    /// The response could not be parsed.
    CannotParseResponse = -1017, "cannot_parse_response";
    /// Cellular policy: roaming off.
    InternationalRoamingOff = -1018, "international_roaming_off";
    /// Cellular policy: a call is active.
    CallIsActive = -1019, "call_is_active";
    /// Cellular policy: data not allowed.
    DataNotAllowed = -1020, "data_not_allowed";
    /// A body stream could not be supplied again.
    RequestBodyStreamExhausted = -1021, "request_body_stream_exhausted";
    /// Cleartext `http://` was refused by the configuration's cleartext policy.
    AppTransportSecurityRequiresSecureConnection = -1022, "app_transport_security_requires_secure_connection";
    /// The upload file does not exist.
    FileDoesNotExist = -1100, "file_does_not_exist";
    /// The upload file is a directory.
    FileIsDirectory = -1101, "file_is_directory";
    /// The upload file cannot be read.
    NoPermissionsToReadFile = -1102, "no_permissions_to_read_file";
    /// A GET with a body ("resource exceeds maximum size").
    DataLengthExceedsMaximum = -1103, "data_length_exceeds_maximum";
    /// A file lies outside the places the session may use.
    FileOutsideSafeArea = -1104, "file_outside_safe_area";
    /// The TLS handshake failed.
    SecureConnectionFailed = -1200, "secure_connection_failed";
    /// The server certificate has expired.
    ServerCertificateHasBadDate = -1201, "server_certificate_has_bad_date";
    /// The server certificate is not trusted (bad signature, wrong host, rejected by the delegate).
    ServerCertificateUntrusted = -1202, "server_certificate_untrusted";
    /// The server certificate chains to an unknown root.
    ServerCertificateHasUnknownRoot = -1203, "server_certificate_has_unknown_root";
    /// The server certificate is not yet valid.
    ServerCertificateNotYetValid = -1204, "server_certificate_not_yet_valid";
    /// The server rejected the client certificate.
    ClientCertificateRejected = -1205, "client_certificate_rejected";
    /// The server requires a client certificate.
    ClientCertificateRequired = -1206, "client_certificate_required";
    /// `return_cache_data_dont_load` with nothing cached.
    CannotLoadFromNetwork = -2000, "cannot_load_from_network";
    /// A download file could not be created.
    CannotCreateFile = -3000, "cannot_create_file";
    /// A download file could not be opened.
    CannotOpenFile = -3001, "cannot_open_file";
    /// A download file could not be closed.
    CannotCloseFile = -3002, "cannot_close_file";
    /// A download file could not be written.
    CannotWriteToFile = -3003, "cannot_write_to_file";
    /// A download file could not be removed.
    CannotRemoveFile = -3004, "cannot_remove_file";
    /// A download file could not be moved.
    CannotMoveFile = -3005, "cannot_move_file";
    /// Decoding failed in the middle of a download.
    DownloadDecodingFailedMidStream = -3006, "download_decoding_failed_mid_stream";
    /// Decoding failed at the end of a download.
    DownloadDecodingFailedToComplete = -3007, "download_decoding_failed_to_complete";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.number())
    }
}

/// A task's failure: an [`ErrorCode`], the URL that failed, a message and the underlying cause.
///
/// This is URLSession's `URLError` with its user-info keys as methods: [`Error::failing_url`] is
/// `NSErrorFailingURLStringKey`, [`std::error::Error::source`] is `NSUnderlyingErrorKey`. Cheap to clone
/// (one `Arc`), so the task, its delegate and an awaiting caller can all hold it. The wording of
/// [`Error::message`] is for people and may change; match on [`Error::code`].
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    code: ErrorCode,
    failing_url: Option<String>,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
    resume_data: Option<ResumeData>,
}

impl Error {
    /// An error with this code and message, not tied to a URL yet.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            inner: Arc::new(Inner {
                code,
                failing_url: None,
                message: message.into(),
                source: None,
                resume_data: None,
            }),
        }
    }

    /// The cancellation error (`-999`, "cancelled") for `url`, as URLSession reports it.
    pub fn cancelled(url: impl Into<String>) -> Error {
        Error::new(ErrorCode::Cancelled, "cancelled").with_url(url)
    }

    /// The same error, naming the URL that failed.
    pub fn with_url(self, url: impl Into<String>) -> Error {
        self.map(|inner| inner.failing_url = Some(url.into()))
    }

    /// The same error, with the underlying cause attached.
    pub fn with_source(self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        let source = source.into();
        self.map(|inner| inner.source = Some(source))
    }

    /// The same error, carrying resume data (`NSURLSessionDownloadTaskResumeData`).
    pub fn with_resume_data(self, data: ResumeData) -> Error {
        self.map(|inner| inner.resume_data = Some(data))
    }

    fn map(self, f: impl FnOnce(&mut Inner)) -> Error {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            // Shared already: rebuild, keeping the cause's text since a boxed cause cannot be cloned.
            Err(shared) => Inner {
                code: shared.code,
                failing_url: shared.failing_url.clone(),
                message: shared.message.clone(),
                source: shared
                    .source
                    .as_ref()
                    .map(|s| Box::<dyn StdError + Send + Sync>::from(s.to_string())),
                resume_data: shared.resume_data.clone(),
            },
        };
        f(&mut inner);
        Error {
            inner: Arc::new(inner),
        }
    }

    /// What went wrong, as a Darwin error code.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The URL whose load failed (`NSErrorFailingURLStringKey`), if known.
    pub fn failing_url(&self) -> Option<&str> {
        self.inner.failing_url.as_deref()
    }

    /// A short description for people ("cancelled", "the request timed out").
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// For a download that stopped part-way and can continue: the data to continue it with
    /// (`URLError.downloadTaskResumeData`). `None` when the download cannot be resumed.
    pub fn resume_data(&self) -> Option<&ResumeData> {
        self.inner.resume_data.as_ref()
    }

    /// True for [`ErrorCode::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.inner.code == ErrorCode::Cancelled
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.inner.code)
            .field("failing_url", &self.inner.failing_url)
            .field("message", &self.inner.message)
            .field("source", &self.inner.source)
            .field("resume_data", &self.inner.resume_data)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.inner.message, self.inner.code)?;
        if let Some(url) = &self.inner.failing_url {
            write!(f, " ({url})")?;
        }
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(
                seen.insert(code.number()),
                "duplicate number {}",
                code.number()
            );
            assert_eq!(ErrorCode::from_number(code.number()), Some(*code));
        }
        assert_eq!(ErrorCode::Cancelled.number(), -999);
        assert_eq!(ErrorCode::ServerCertificateHasUnknownRoot.number(), -1203);
        assert_eq!(ErrorCode::from_number(12345), None);
    }

    #[test]
    fn cancelled_carries_url_and_text() {
        let e = Error::cancelled("https://example.test/a");
        assert!(e.is_cancelled());
        assert_eq!(e.message(), "cancelled");
        assert_eq!(e.failing_url(), Some("https://example.test/a"));
        assert!(e.to_string().contains("-999"));
    }

    #[test]
    fn shared_error_keeps_its_cause_text_when_rebuilt() {
        let e = Error::new(ErrorCode::TimedOut, "the request timed out").with_source("idle 1s");
        let kept = e.clone();
        let e2 = e.with_url("http://a.test/");
        assert_eq!(
            e2.source().map(|s| s.to_string()).as_deref(),
            Some("idle 1s")
        );
        assert_eq!(kept.failing_url(), None);
    }
}
