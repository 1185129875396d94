//! A tenant's task as an aggregate (`"task"`): accepted with its [`TaskSpec`], then run by a
//! worker through the shared [`lifecycle`](super::lifecycle) (start, complete, failed
//! attempts with backoff, failure after [`MAX_ATTEMPTS`](super::lifecycle::MAX_ATTEMPTS),
//! rejection before any start). The aggregate id is the caller's task id, so Accept is
//! idempotent: the same spec again emits nothing, another spec is an
//! [`TaskError::IdempotencyConflict`].
//!
//! A spec is valid when its description is 1..=500 characters without control characters,
//! its cost is not negative, its `tenantId` tag is its tenant, and its input fits its type
//! (FORECAST: a series and a variant; ANALYSIS: a series; LOG_ANALYSIS: a log). A result is
//! accepted only if it is of the task's type.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::cost::{Complexity, FinOpsTags};
use super::lifecycle::{
    check_billing, check_text, work_events, Acceptance, Lifecycle, LifecycleError, Status, WorkItem,
};
use super::work::{Priority, TaskInput, TaskOutput, TaskType};
use crate::forecast::Strategy;
use crate::money::Money;

/// What a task is asked to do, fixed at acceptance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    pub tenant: String,
    pub task_type: TaskType,
    pub priority: Priority,
    pub description: String,
    pub complexity: Complexity,
    pub cost: Money,
    pub tags: FinOpsTags,
    pub input: TaskInput,
    /// FORECAST: the variant chosen at acceptance.
    pub variant: Option<Strategy>,
    pub targeting_key: String,
    pub platforms: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TaskCommand {
    Accept {
        spec: TaskSpec,
        occurred_at: DateTime<Utc>,
    },
    Reject {
        code: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
    Start {
        occurred_at: DateTime<Utc>,
    },
    Complete {
        output: TaskOutput,
        duration_ms: u64,
        occurred_at: DateTime<Utc>,
    },
    FailAttempt {
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskEvent {
    TaskAccepted {
        spec: TaskSpec,
        occurred_at: DateTime<Utc>,
    },
    TaskRejected {
        code: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
    TaskStarted {
        attempt: u32,
        occurred_at: DateTime<Utc>,
    },
    TaskCompleted {
        attempt: u32,
        output: TaskOutput,
        duration_ms: u64,
        occurred_at: DateTime<Utc>,
    },
    /// `retry_at` is `None` after the last attempt; `TaskFailed` follows.
    TaskAttemptFailed {
        attempt: u32,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        occurred_at: DateTime<Utc>,
    },
    TaskFailed {
        attempts: u32,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

work_events!(TaskEvent {
    accepted: TaskAccepted,
    rejected: TaskRejected,
    started: TaskStarted,
    completed: TaskCompleted,
    attempt_failed: TaskAttemptFailed,
    failed: TaskFailed,
});

/// Why a task command was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TaskError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("a task with this id was accepted with another spec")]
    IdempotencyConflict,
    #[error("invalid task: {0}")]
    InvalidSpec(String),
}

impl TaskError {
    /// The same command against the same state always fails the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lifecycle(error) => error.is_retryable(),
            Self::IdempotencyConflict | Self::InvalidSpec(_) => false,
        }
    }
}

/// One task. The aggregate id is the task id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    work: Option<WorkItem<TaskSpec>>,
    output: Option<TaskOutput>,
}

impl Task {
    pub fn spec(&self) -> Option<&TaskSpec> {
        self.work.as_ref().map(WorkItem::spec)
    }

    pub fn lifecycle(&self) -> Option<&Lifecycle> {
        self.work.as_ref().map(WorkItem::lifecycle)
    }

    pub fn status(&self) -> Option<Status> {
        self.lifecycle().map(|l| l.status)
    }

    /// The result, once completed.
    pub fn output(&self) -> Option<&TaskOutput> {
        self.output.as_ref()
    }

    /// `(code, reason)`, once rejected.
    pub fn rejection(&self) -> Option<(&str, &str)> {
        self.work.as_ref()?.rejection()
    }

    pub fn decide(&self, command: TaskCommand) -> Result<Vec<TaskEvent>, TaskError> {
        let existing = || WorkItem::existing(self.work.as_ref()).map(WorkItem::lifecycle);
        match command {
            TaskCommand::Accept { spec, occurred_at } => {
                match WorkItem::acceptance(self.work.as_ref(), &spec) {
                    Acceptance::Replay => Ok(vec![]),
                    Acceptance::Conflict => Err(TaskError::IdempotencyConflict),
                    Acceptance::New => {
                        check_spec(&spec).map_err(TaskError::InvalidSpec)?;
                        Ok(vec![TaskEvent::TaskAccepted { spec, occurred_at }])
                    }
                }
            }
            TaskCommand::Reject {
                code,
                reason,
                occurred_at,
            } => Ok(existing()?.decide_reject(code, reason, occurred_at)?),
            TaskCommand::Start { occurred_at } => Ok(existing()?.decide_start(occurred_at)?),
            TaskCommand::Complete {
                output,
                duration_ms,
                occurred_at,
            } => {
                let work = WorkItem::existing(self.work.as_ref())?;
                let attempt = work.lifecycle().check_running()?;
                check_output(work.spec(), &output).map_err(TaskError::InvalidSpec)?;
                Ok(vec![TaskEvent::TaskCompleted {
                    attempt,
                    output,
                    duration_ms,
                    occurred_at,
                }])
            }
            TaskCommand::FailAttempt {
                reason,
                occurred_at,
            } => Ok(existing()?.decide_fail(reason, occurred_at)?),
        }
    }
}

fn check_spec(spec: &TaskSpec) -> Result<(), String> {
    check_text("description", &spec.description, false)?;
    check_billing(&spec.tenant, spec.cost, &spec.tags)?;
    let series = matches!(spec.input, TaskInput::Series { .. });
    match spec.task_type {
        TaskType::Forecast if spec.variant.is_none() => {
            Err("a FORECAST task needs a variant".to_owned())
        }
        TaskType::Forecast | TaskType::Analysis if !series => {
            Err(format!("a {} task needs a series", spec.task_type.as_str()))
        }
        TaskType::LogAnalysis if series => Err("a LOG_ANALYSIS task needs a log".to_owned()),
        _ => Ok(()),
    }
}

fn check_output(spec: &TaskSpec, output: &TaskOutput) -> Result<(), String> {
    let produced = match output {
        TaskOutput::Forecast(_) => TaskType::Forecast,
        TaskOutput::Analysis(_) => TaskType::Analysis,
        TaskOutput::LogAnalysis(_) => TaskType::LogAnalysis,
    };
    if produced != spec.task_type {
        return Err(format!(
            "a {} result for a {} task",
            produced.as_str(),
            spec.task_type.as_str()
        ));
    }
    Ok(())
}

impl Aggregate for Task {
    const TYPE: &'static str = "task";
    type Command = TaskCommand;
    type Event = TaskEvent;
    type Error = TaskError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        WorkItem::apply_event(&mut self.work, &event);
        match event {
            TaskEvent::TaskAccepted { spec, occurred_at } => {
                self.work = Some(WorkItem::accepted(spec, occurred_at));
            }
            TaskEvent::TaskCompleted { output, .. } => self.output = Some(output),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::fixtures::{
        at, attempt_failed, failed, money, refusal, rejected, started, tags, FAILURE_REASON,
        REJECTION,
    };
    use crate::tenancy::lifecycle::MAX_TEXT_CHARS;
    use crate::tenancy::work::{LogFinding, LogFindings, SeriesInput};
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    type Tf = TestFramework<Task>;

    fn log_spec() -> TaskSpec {
        TaskSpec {
            tenant: "acme".to_owned(),
            task_type: TaskType::LogAnalysis,
            priority: Priority::High,
            description: "Why did the nightly build fail?".to_owned(),
            complexity: Complexity::Intermediate,
            cost: Complexity::Intermediate.task_cost(),
            tags: tags("acme"),
            input: TaskInput::Log {
                redacted_text: "error: linker failed\n".to_owned(),
            },
            variant: None,
            targeting_key: "user-1".to_owned(),
            platforms: vec!["github".to_owned()],
        }
    }

    fn forecast_spec() -> TaskSpec {
        TaskSpec {
            task_type: TaskType::Forecast,
            input: TaskInput::Series {
                series: SeriesInput {
                    values: vec![1.0, 2.0, 3.0, 4.0],
                    season_length: None,
                },
                horizon: 2,
                level_percent: 95.0,
            },
            variant: Some(Strategy::Balanced),
            ..log_spec()
        }
    }

    fn output() -> TaskOutput {
        TaskOutput::LogAnalysis(LogFindings {
            lines: 1,
            findings: vec![LogFinding {
                agent: "build".to_owned(),
                kind: "linker".to_owned(),
                severity: "high".to_owned(),
                title: "linker failed".to_owned(),
                line: Some(1),
            }],
        })
    }

    fn accepted() -> TaskEvent {
        TaskEvent::TaskAccepted {
            spec: log_spec(),
            occurred_at: at(0),
        }
    }

    fn completed(attempt: u32) -> TaskEvent {
        TaskEvent::TaskCompleted {
            attempt,
            output: output(),
            duration_ms: 1_250,
            occurred_at: at(20),
        }
    }

    fn accept(spec: TaskSpec) -> TaskCommand {
        TaskCommand::Accept {
            spec,
            occurred_at: at(0),
        }
    }

    fn reject() -> TaskCommand {
        let (code, reason) = REJECTION;
        TaskCommand::Reject {
            code: code.to_owned(),
            reason: reason.to_owned(),
            occurred_at: at(1),
        }
    }

    fn start(seconds: i64) -> TaskCommand {
        TaskCommand::Start {
            occurred_at: at(seconds),
        }
    }

    fn complete() -> TaskCommand {
        TaskCommand::Complete {
            output: output(),
            duration_ms: 1_250,
            occurred_at: at(20),
        }
    }

    fn fail(seconds: i64) -> TaskCommand {
        TaskCommand::FailAttempt {
            reason: FAILURE_REASON.to_owned(),
            occurred_at: at(seconds),
        }
    }

    fn lifecycle_error(error: LifecycleError) -> TaskError {
        TaskError::Lifecycle(error)
    }

    fn finished(status: Status) -> TaskError {
        lifecycle_error(LifecycleError::AlreadyFinished { status })
    }

    fn invalid(spec: TaskSpec) {
        let error = refusal::<Task>(vec![], accept(spec));
        assert!(matches!(error, TaskError::InvalidSpec(_)), "{error:?}");
    }

    #[test]
    fn happy_path() {
        Tf::with(())
            .given_no_previous_events()
            .when(accept(log_spec()))
            .then_expect_events(vec![accepted()]);
        Tf::with(())
            .given(vec![accepted()])
            .when(start(1))
            .then_expect_events(vec![started(1, 1)]);
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(complete())
            .then_expect_events(vec![completed(1)]);
    }

    #[test]
    fn failed_attempts_retry_after_one_then_two_seconds() {
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(fail(5))
            .then_expect_events(vec![attempt_failed(1, 5, Some(1))]);
        let retry_at = Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(fail(5))
            .inspect_result();
        assert!(matches!(
            retry_at.as_deref(),
            Ok([TaskEvent::TaskAttemptFailed { retry_at: Some(r), .. }]) if *r == at(6)
        ));
        // Started again before retry_at: the worker decides when.
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
            ])
            .when(start(5))
            .then_expect_events(vec![started(2, 5)]);
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
                started(2, 6),
            ])
            .when(fail(10))
            .then_expect_events(vec![attempt_failed(2, 10, Some(2))]);
    }

    #[test]
    fn the_third_failure_fails_the_task() {
        let history = vec![
            accepted(),
            started(1, 1),
            attempt_failed(1, 5, Some(1)),
            started(2, 6),
            attempt_failed(2, 10, Some(2)),
            started(3, 12),
        ];
        let last = vec![attempt_failed(3, 15, None), failed(3, 15)];
        Tf::with(())
            .given(history.clone())
            .when(fail(15))
            .then_expect_events(last.clone());
        let mut over = history;
        over.extend(last);
        for command in [start(16), complete(), fail(16), reject()] {
            Tf::with(())
                .given(over.clone())
                .when(command)
                .then_expect_error(finished(Status::Failed));
        }
    }

    #[test]
    fn a_retry_can_still_complete() {
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
                started(2, 6),
            ])
            .when(complete())
            .then_expect_events(vec![completed(2)]);
    }

    #[test]
    fn reject_only_before_any_start() {
        Tf::with(())
            .given(vec![accepted()])
            .when(reject())
            .then_expect_events(vec![rejected(1)]);
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(reject())
            .then_expect_error(lifecycle_error(LifecycleError::CannotReject {
                status: Status::Running,
            }));
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
            ])
            .when(reject())
            .then_expect_error(lifecycle_error(LifecycleError::CannotReject {
                status: Status::Retrying,
            }));
        for command in [start(2), complete(), fail(2), reject()] {
            Tf::with(())
                .given(vec![accepted(), rejected(1)])
                .when(command)
                .then_expect_error(finished(Status::Rejected));
        }
    }

    #[test]
    fn commands_need_the_right_status() {
        for command in [start(2), reject(), complete(), fail(2)] {
            Tf::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(lifecycle_error(LifecycleError::NotFound));
        }
        Tf::with(())
            .given(vec![accepted()])
            .when(complete())
            .then_expect_error(lifecycle_error(LifecycleError::NotRunning {
                status: Status::Accepted,
            }));
        Tf::with(())
            .given(vec![accepted()])
            .when(fail(2))
            .then_expect_error(lifecycle_error(LifecycleError::NotRunning {
                status: Status::Accepted,
            }));
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(start(2))
            .then_expect_error(lifecycle_error(LifecycleError::CannotStart {
                status: Status::Running,
            }));
        for command in [start(21), complete(), fail(21), reject()] {
            Tf::with(())
                .given(vec![accepted(), started(1, 1), completed(1)])
                .when(command)
                .then_expect_error(finished(Status::Completed));
        }
    }

    #[test]
    fn accept_is_idempotent_per_spec() {
        for history in [
            vec![accepted()],
            vec![accepted(), started(1, 1), completed(1)],
            vec![accepted(), rejected(1)],
        ] {
            Tf::with(())
                .given(history.clone())
                .when(accept(log_spec()))
                .then_expect_events(vec![]);
            Tf::with(())
                .given(history)
                .when(accept(TaskSpec {
                    description: "Another question".to_owned(),
                    ..log_spec()
                }))
                .then_expect_error(TaskError::IdempotencyConflict);
        }
    }

    #[test]
    fn specs_are_validated() {
        Tf::with(())
            .given_no_previous_events()
            .when(accept(forecast_spec()))
            .then_expect_events(vec![TaskEvent::TaskAccepted {
                spec: forecast_spec(),
                occurred_at: at(0),
            }]);
        let analysis = TaskSpec {
            task_type: TaskType::Analysis,
            variant: None,
            ..forecast_spec()
        };
        Tf::with(())
            .given_no_previous_events()
            .when(accept(analysis.clone()))
            .then_expect_events(vec![TaskEvent::TaskAccepted {
                spec: analysis.clone(),
                occurred_at: at(0),
            }]);
        let exact = "d".repeat(MAX_TEXT_CHARS);
        let long = "d".repeat(MAX_TEXT_CHARS + 1);
        assert!(check_spec(&TaskSpec {
            description: exact,
            ..log_spec()
        })
        .is_ok());
        for description in [String::new(), long, "line\nbreak".to_owned()] {
            invalid(TaskSpec {
                description,
                ..log_spec()
            });
        }
        invalid(TaskSpec {
            cost: money("-0.01"),
            ..log_spec()
        });
        invalid(TaskSpec {
            tags: tags("globex"),
            ..log_spec()
        });
        invalid(TaskSpec {
            variant: None,
            ..forecast_spec()
        });
        invalid(TaskSpec {
            task_type: TaskType::Forecast,
            variant: Some(Strategy::Balanced),
            ..log_spec()
        });
        invalid(TaskSpec {
            task_type: TaskType::Analysis,
            ..log_spec()
        });
        invalid(TaskSpec {
            task_type: TaskType::LogAnalysis,
            ..analysis
        });
        let free = TaskSpec {
            cost: Money::ZERO,
            ..log_spec()
        };
        assert_eq!(check_spec(&free), Ok(()));
    }

    #[test]
    fn a_result_of_another_type_is_refused() {
        let forecast = TaskEvent::TaskAccepted {
            spec: forecast_spec(),
            occurred_at: at(0),
        };
        let error = refusal::<Task>(vec![forecast, started(1, 1)], complete());
        assert!(matches!(error, TaskError::InvalidSpec(_)), "{error:?}");
    }

    #[test]
    fn state_follows_the_events() {
        let mut task = Task::default();
        assert_eq!(task.status(), None);
        assert_eq!(task.spec(), None);
        for event in [accepted(), started(1, 1), attempt_failed(1, 5, Some(1))] {
            task.apply(event);
        }
        let life = task.lifecycle().unwrap();
        assert_eq!(life.status, Status::Retrying);
        assert_eq!(life.attempts, 1);
        assert_eq!(life.retry_at, Some(at(6)));
        assert_eq!(life.last_error.as_deref(), Some(FAILURE_REASON));
        assert_eq!(life.accepted_at, at(0));
        assert_eq!(life.started_at, Some(at(1)));
        task.apply(started(2, 6));
        task.apply(completed(2));
        assert_eq!(task.status(), Some(Status::Completed));
        assert_eq!(task.output(), Some(&output()));
        assert_eq!(task.lifecycle().unwrap().finished_at, Some(at(20)));
        assert_eq!(task.lifecycle().unwrap().retry_at, None);
        assert_eq!(task.spec(), Some(&log_spec()));
        assert_eq!(task.rejection(), None);

        let mut refused = Task::default();
        refused.apply(accepted());
        refused.apply(rejected(1));
        assert_eq!(refused.status(), Some(Status::Rejected));
        assert_eq!(refused.rejection(), Some(REJECTION));
    }

    #[test]
    fn events_and_state_round_trip_through_json() {
        let events = vec![
            TaskEvent::TaskAccepted {
                spec: forecast_spec(),
                occurred_at: at(0),
            },
            started(1, 1),
            attempt_failed(1, 5, Some(1)),
        ];
        let mut task = Task::default();
        for event in &events {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(serde_json::from_str::<TaskEvent>(&json).unwrap(), *event);
            task.apply(event.clone());
        }
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["TaskAccepted"]["spec"]["taskType"], "FORECAST");
        assert_eq!(json["TaskAccepted"]["spec"]["tags"]["tenantId"], "acme");
        let state = serde_json::to_string(&task).unwrap();
        assert_eq!(serde_json::from_str::<Task>(&state).unwrap(), task);
        assert_eq!(completed(1).event_type(), "TaskCompleted");
        assert_eq!(completed(1).event_version(), "1.0");
        assert_eq!(Task::TYPE, "task");
        assert!(!TaskError::IdempotencyConflict.is_retryable());
        assert!(!TaskError::InvalidSpec(String::new()).is_retryable());
    }
}
