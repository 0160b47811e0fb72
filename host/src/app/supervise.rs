//! Supervision of the pipeline's long-running tasks (connector, derivation): a task that
//! panics is logged as an error and reported, and `callhook run` stops with an error, so its
//! service manager starts it afresh (see `docs/decisions.md`).

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A task that should have run until shutdown panicked (or was aborted).
#[derive(Debug, thiserror::Error)]
#[error(
    "the {task} task panicked ({message}); callhook stops so that its service manager starts it again"
)]
pub struct TaskPanicked {
    /// Which task, e.g. `connector`.
    pub task: &'static str,
    /// The panic's message, when it was a string.
    pub message: String,
}

/// Waits for `task` and hands back its output. A panic is logged as an error naming `name`,
/// cancels `failed` (what the host watches to stop) and becomes the error.
pub async fn supervise<T>(
    name: &'static str,
    task: JoinHandle<T>,
    failed: CancellationToken,
) -> Result<T, TaskPanicked> {
    let error = match task.await {
        Ok(output) => return Ok(output),
        Err(error) => error,
    };
    let message = if error.is_panic() {
        panic_message(error.into_panic())
    } else {
        "aborted".to_string()
    };
    tracing::error!(task = name, panic = %message, "a task of the pipeline panicked; stopping");
    failed.cancel();
    Err(TaskPanicked {
        task: name,
        message,
    })
}

/// The text of a panic's payload (`panic!` with a literal or a format string), else a
/// placeholder.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_stops_the_host() {
        let failed = CancellationToken::new();
        let task = tokio::spawn(async {
            tokio::task::yield_now().await;
            if true {
                panic!("socket state {} is impossible", 7);
            }
            Ok::<(), std::io::Error>(())
        });
        let ended = supervise("connector", task, failed.clone()).await;
        let error = ended.expect_err("a panic is an error");
        assert_eq!(
            (error.task, error.message.as_str()),
            ("connector", "socket state 7 is impossible")
        );
        assert!(error.to_string().contains("the connector task panicked"));
        assert!(failed.is_cancelled(), "the host is told to stop");
    }

    #[tokio::test]
    async fn a_task_that_returns_is_handed_back_without_stopping_the_host() {
        let failed = CancellationToken::new();
        let task = tokio::spawn(async { Err::<(), _>("the PBX refused the credentials") });
        let ended = supervise("connector", task, failed.clone()).await;
        assert_eq!(ended.unwrap(), Err("the PBX refused the credentials"));
        assert!(!failed.is_cancelled());
    }

    #[tokio::test]
    async fn an_aborted_task_counts_as_failed() {
        let failed = CancellationToken::new();
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let error = supervise("derivation", task, failed.clone())
            .await
            .expect_err("aborted");
        assert_eq!(
            (error.task, error.message.as_str()),
            ("derivation", "aborted")
        );
        assert!(failed.is_cancelled());
    }
}
