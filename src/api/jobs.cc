// Jobs: submit (idempotent with an Idempotency-Key), list, read and cancel (docs/formats/
// job.md).
#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/core/exchange.h"
#include "src/protocol/task_spec.h"

namespace ocx::api {
namespace {

constexpr size_t kConstraintsBytesMax = 4096;

Json JobTaskJson(const store::JobTaskRow& t) {
  return Json{{"index", t.index},
              {"state", core::JobTaskStateName(t.state)},
              {"attempts", t.attempts},
              {"order", t.order},
              {"lease", t.lease},
              {"machine", t.machine}};
}

Json JobJson(const store::JobRow& j) {
  Json out{{"id", j.id},
           {"owner", j.owner},
           {"client_job_id", j.client_job_id},
           {"market", j.market},
           {"tasks_count", j.tasks_count},
           {"slots_per_task", j.slots_per_task},
           {"max_price", Money(j.max_price)},
           {"max_hours", j.max_hours},
           {"constraints", j.constraints},
           {"state", core::JobStateName(j.state)},
           {"submitted_sequence", j.submitted_sequence},
           {"submitted_time", j.submitted_time}};
  if (j.end_sequence != 0) {
    out["end_sequence"] = j.end_sequence;
    out["end_time"] = j.end_time;
  }
  if (!j.tasks.empty()) {
    Json tasks = Json::array();
    for (const store::JobTaskRow& t : j.tasks) tasks.push_back(JobTaskJson(t));
    out["tasks"] = std::move(tasks);
    out["task_spec"] = TaskDocumentJson(j.task_spec);
  }
  return out;
}

// The job as the submission's events left it.
Json SubmittedJobJson(const core::SubmitJob& c, const core::Acked& acked) {
  store::JobRow row;
  row.id = acked.output.result.job;
  row.owner = c.actor;
  row.client_job_id = c.client_job_id;
  row.market = c.market;
  row.tasks_count = c.tasks;
  row.slots_per_task = c.slots_per_task;
  row.max_price = c.max_price;
  row.max_hours = c.max_hours;
  row.constraints = c.constraints;
  row.task_spec = c.task_spec;
  row.submitted_sequence = acked.sequence;
  row.tasks.resize(static_cast<size_t>(c.tasks));
  for (int32_t i = 0; i < c.tasks; ++i) row.tasks[static_cast<size_t>(i)].index = i;
  for (const core::CoreEvent& event : acked.output.events) {
    if (const auto* t = std::get_if<core::JobTaskChanged>(&event); t && t->job == row.id) {
      if (t->task_index < 0 || static_cast<size_t>(t->task_index) >= row.tasks.size()) continue;
      row.tasks[static_cast<size_t>(t->task_index)] =
          store::JobTaskRow{t->task_index, t->state, t->attempts, t->order, t->lease, t->machine};
    } else if (const auto* s = std::get_if<core::JobSubmitted>(&event); s && s->job == row.id) {
      row.submitted_time = s->submitted;
    } else if (const auto* e = std::get_if<core::JobEnded>(&event); e && e->job == row.id) {
      row.state = e->state;
      row.end_sequence = acked.sequence;
      row.end_time = e->end;
    }
  }
  return JobJson(row);
}

std::optional<core::SubmitJob> ParseJob(const Json& body, core::AccountId actor,
                                        HttpResponse* error) {
  Fields f(body);
  core::SubmitJob c;
  c.actor = actor;
  c.market = f.Str("market", false, 64);
  if (c.market.empty()) c.market = "cpu";
  c.tasks = static_cast<int32_t>(f.Int("tasks", false, 1, 1, core::kJobTasksMax));
  c.slots_per_task = f.Int("slots_per_task", false, 1, 1, 1'000'000);
  c.max_price = f.Money("max_price", true);
  c.max_hours = static_cast<int32_t>(f.Int("max_hours", false, 1, 1, 24 * 31));
  const std::string constraints = f.Str("constraints", false, kConstraintsBytesMax);
  const Json* task = f.Object("task", true);
  if (!f.Finish()) {
    *error = f.Error();
    return std::nullopt;
  }
  const auto spec = protocol::ParseTaskSpec(base::DumpJson(*task));
  if (!spec.ok()) {
    *error = Refuse(Refusal::kInvalidTask, std::string(spec.status().message()));
    return std::nullopt;
  }
  c.task_spec = base::DumpJson(protocol::TaskSpecToJson(*spec));
  if (!constraints.empty() && !CanonicalConstraints(constraints, &c.constraints, error)) {
    return std::nullopt;
  }
  return c;
}

void SubmitJob(Api& api, const CallPtr& call) {
  HttpResponse error;
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  std::optional<core::SubmitJob> parsed = ParseJob(*body, call->caller->id, &error);
  if (!parsed) return call->Respond(std::move(error));
  const std::string& key = call->request.Header("idempotency-key");
  if (!key.empty() && !ValidIdempotencyKey(key)) {
    return call->Respond(Refuse(
        Refusal::kInvalidIdempotencyKey,
        "The Idempotency-Key header is 1 to 64 printable ASCII characters without spaces, "
        "not starting with \"auto-\" (the exchange's own)."));
  }
  parsed->client_job_id = key.empty() ? AutoClientOrderId() : key;
  const core::SubmitJob command = *parsed;
  Api* self = &api;
  api.SubmitRaw(call, command, [self, call, command](const core::Acked& acked) {
    try {
      const core::CommandResult& result = acked.output.result;
      if (result.accepted) {
        return call->Respond(JsonResponse(
            201, Json{{"job", SubmittedJobJson(command, acked)}, {"sequence", acked.sequence}}));
      }
      if (result.refusal != Refusal::kDuplicateClientJobId || result.job == 0) {
        return call->Respond(Refuse(result));
      }
      // An idempotent retry: answer with the job the key submitted, if it asked the same.
      const core::JobId original = result.job;
      store::Store* store = self->deps().store;
      self->ReadStoreAt(call, acked.sequence, [store, original, command] {
        const auto job = store->GetJob(original);
        if (!job.ok()) return StoreError(job.status());
        if (job->market != command.market || job->tasks_count != command.tasks ||
            job->task_spec != command.task_spec || job->max_price != command.max_price) {
          return Refuse(Refusal::kIdempotencyKeyReused,
                        "This Idempotency-Key already submitted another job.");
        }
        return JsonResponse(200, Json{{"job", JobJson(*job)}, {"idempotent_replay", true}});
      });
    } catch (const std::exception& e) {
      call->Respond(InternalError(std::string("a job's answer threw: ") + e.what()));
    }
  });
}

void ListJobs(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const core::AccountId account = call->caller->id;
  api.ReadStore(call, [store, account, after, limit] {
    const auto rows = store->ListJobs(account, after, limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(200, PageJson(*rows, limit, JobJson,
                                      [](const auto& row) { return row.id; }));
  });
}

void GetJob(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  api.ReadStore(call, [store, caller, id] {
    const auto job = store->GetJob(id);
    if (!job.ok() && job.status().code() != absl::StatusCode::kNotFound) {
      return StoreError(job.status());
    }
    if (!job.ok() || !MayReadJob(caller, job->owner)) {
      return Refuse(Refusal::kUnknownJob, "You have no job with this id.");
    }
    return JsonResponse(200, Json{{"job", JobJson(*job)}});
  });
}

void CancelJob(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  api.Submit(call, core::CancelJob{call->caller->id, id}, [id](const core::Acked& acked) {
    if (!acked.output.result.accepted) {
      // Another account's job reads as unknown, as on GET.
      if (acked.output.result.refusal == Refusal::kNotAuthorized) {
        return Refuse(Refusal::kUnknownJob, "You have no running job with this id.");
      }
      return Refuse(acked.output.result);
    }
    return JsonResponse(200,
                        Json{{"job", id}, {"state", "cancelled"}, {"sequence", acked.sequence}});
  });
}

}  // namespace

void AddJobRoutes(std::vector<Route>* routes) {
  routes->insert(
      routes->end(),
      {
          {"POST", "/v1/jobs", "Submit a job (docs/formats/job.md; Idempotency-Key header)",
           Auth::kAccount, 201, Body::kJson, false, &SubmitJob},
          {"GET", "/v1/jobs", "My jobs", Auth::kAccount, 200, Body::kNone, false, &ListJobs},
          {"GET", "/v1/jobs/{id}", "One of my jobs with its tasks", Auth::kAccount, 200,
           Body::kNone, false, &GetJob},
          {"DELETE", "/v1/jobs/{id}", "Cancel a job: its orders and running tasks",
           Auth::kAccount, 200, Body::kNone, false, &CancelJob},
      });
}

}  // namespace ocx::api
