// Leases: the buyer's and seller's view, usage reports, the lease's task, and ending a lease
// (docs/api.md, "Leases"; docs/formats/task.md).
#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/core/exchange.h"
#include "src/protocol/task_spec.h"

namespace ocx::api {
namespace {

Json LeaseJson(const store::LeaseRow& l) {
  Json j{{"id", l.id},
         {"buyer", l.buyer},
         {"seller", l.seller},
         {"machine", l.machine},
         {"market", l.market},
         {"slots", l.slots},
         {"price", Money(l.price)},
         {"max_hours", l.max_hours},
         {"start", l.start},
         {"escrow", Money(l.escrow)},
         {"buy_order", l.buy_order},
         {"sell_order", l.sell_order},
         {"billed_total", Money(l.billed_total)},
         {"billed_seconds", l.billed_seconds},
         {"reported_wall_seconds", l.reported_wall_seconds},
         {"status", store::LeaseStatusName(l.status)}};
  if (l.end_reason) {
    j["end_reason"] = core::LeaseEndReasonName(*l.end_reason);
    j["end_time"] = l.end_time;
    j["refunded"] = Money(l.refunded);
  }
  return j;
}

Json UsageJson(const store::UsageRow& u) {
  return Json{{"lease", u.lease},
              {"sequence", u.sequence},
              {"time", u.time},
              {"wall_seconds", u.wall_seconds},
              {"cpu_seconds", u.cpu_seconds},
              {"gpu_seconds", u.gpu_seconds},
              {"peak_memory_mib", u.peak_memory_mib},
              {"billed_total", Money(u.billed_total)}};
}

// The lease, when the caller may read it; otherwise the refusal to answer with (a lease the
// caller may not see reads as unknown).
absl::StatusOr<store::LeaseRow> ReadableLease(store::Store* store, const Caller& caller,
                                              uint64_t id, HttpResponse* refusal) {
  auto lease = store->GetLease(id);
  if (!lease.ok() && lease.status().code() != absl::StatusCode::kNotFound) {
    *refusal = StoreError(lease.status());
    return lease.status();
  }
  if (!lease.ok() || !MayReadLease(caller, lease->buyer, lease->seller)) {
    *refusal = Refuse(Refusal::kUnknownLease, "You have no lease with this id.");
    return absl::NotFoundError("lease");
  }
  return lease;
}

void ListLeases(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const core::AccountId account = call->caller->id;
  api.ReadStore(call, [store, account, after, limit] {
    const auto rows = store->ListLeases(account, after, limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(200, PageJson(*rows, limit, LeaseJson,
                                      [](const auto& row) { return row.id; }));
  });
}

void GetLease(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  api.ReadStore(call, [store, caller, id] {
    HttpResponse refusal;
    const auto lease = ReadableLease(store, caller, id, &refusal);
    if (!lease.ok()) return refusal;
    return JsonResponse(200, Json{{"lease", LeaseJson(*lease)}});
  });
}

void LeaseUsage(Api& api, const CallPtr& call) {
  uint64_t id = 0, after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error) ||
      !PageParams(call->request, &after, &limit, &error)) {
    return call->Respond(std::move(error));
  }
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  api.ReadStore(call, [store, caller, id, after, limit] {
    HttpResponse refusal;
    const auto lease = ReadableLease(store, caller, id, &refusal);
    if (!lease.ok()) return refusal;
    const auto rows = store->ListUsage(id, after, limit);
    if (!rows.ok()) return StoreError(rows.status());
    return JsonResponse(200, PageJson(*rows, limit, UsageJson,
                                      [](const auto& row) { return row.sequence; }));
  });
}

void AssignTask(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  if (!ParseJsonBody(call->request, &error)) return call->Respond(std::move(error));
  const auto spec = protocol::ParseTaskSpec(call->request.body);
  if (!spec.ok()) return call->Respond(Refuse(Refusal::kInvalidTask, std::string(spec.status().message())));
  // The canonical form is journaled: the same spec always gives the same bytes.
  std::string canonical = base::DumpJson(protocol::TaskSpecToJson(*spec));
  api.Submit(call, core::AssignTask{call->caller->id, id, std::move(canonical)},
             [id](const core::Acked& acked) {
               if (!acked.output.result.accepted) return Refuse(acked.output.result);
               return JsonResponse(
                   201, Json{{"lease", id}, {"status", "running"}, {"sequence", acked.sequence}});
             });
}

void GetTask(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  store::Store* store = api.deps().store;
  const Caller caller = call->caller;
  api.ReadStore(call, [store, caller, id] {
    HttpResponse refusal;
    const auto lease = ReadableLease(store, caller, id, &refusal);
    if (!lease.ok()) return refusal;
    const auto task = store->GetTask(id);
    if (!task.ok()) {
      if (task.status().code() != absl::StatusCode::kNotFound) return StoreError(task.status());
      return Refuse(Refusal::kUnknownTask, "This lease has no task yet.");
    }
    Json out{{"lease", task->lease},
             {"machine", task->machine},
             {"status", task->status},
             {"spec", TaskDocumentJson(task->spec)},
             {"assigned_sequence", task->assigned_sequence},
             {"assigned_time", task->assigned_time}};
    if (!task->result.empty()) out["result"] = TaskDocumentJson(task->result);
    if (task->finished_sequence != 0) {
      out["finished_sequence"] = task->finished_sequence;
      out["finished_time"] = task->finished_time;
    }
    return JsonResponse(200, Json{{"task", out}});
  });
}

HttpResponse LeaseEndedReply(core::LeaseId id, const core::Acked& acked) {
  if (!acked.output.result.accepted) return Refuse(acked.output.result);
  Json body{{"lease", id}, {"sequence", acked.sequence}};
  for (const auto& event : acked.output.events) {
    if (const auto* ended = std::get_if<core::LeaseEnded>(&event); ended && ended->lease == id) {
      body["status"] = "ended";
      body["reason"] = core::LeaseEndReasonName(ended->reason);
      body["billed_seconds"] = ended->billed_seconds;
      body["billed_total"] = Money(ended->billed_total);
      body["refunded"] = Money(ended->refunded);
    }
  }
  return JsonResponse(200, body);
}

void EndLease(Api& api, const CallPtr& call, core::LeaseEndReason reason) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  api.Submit(call, core::EndLease{call->caller->id, 0, id, reason},
             [id](const core::Acked& acked) { return LeaseEndedReply(id, acked); });
}

void ReleaseLease(Api& api, const CallPtr& call) {
  EndLease(api, call, core::LeaseEndReason::kReleased);
}

void ReclaimLease(Api& api, const CallPtr& call) {
  EndLease(api, call, core::LeaseEndReason::kReclaimed);
}

}  // namespace

void AddLeaseRoutes(std::vector<Route>* routes) {
  routes->insert(
      routes->end(),
      {
          {"GET", "/v1/leases", "Leases where I am buyer or seller", Auth::kAccount, 200,
           Body::kNone, false, &ListLeases},
          {"GET", "/v1/leases/{id}", "One lease", Auth::kAccount, 200, Body::kNone, false,
           &GetLease},
          {"GET", "/v1/leases/{id}/usage", "Usage reports of a lease", Auth::kAccount, 200,
           Body::kNone, false, &LeaseUsage},
          {"POST", "/v1/leases/{id}/task", "Give an active lease its task (docs/formats/task.md)",
           Auth::kAccount, 201, Body::kJson, false, &AssignTask},
          {"GET", "/v1/leases/{id}/task", "A lease's task: spec, status and result",
           Auth::kAccount, 200, Body::kNone, false, &GetTask},
          {"POST", "/v1/leases/{id}/release", "End a lease as its buyer", Auth::kAccount, 200,
           Body::kNone, false, &ReleaseLease},
          {"POST", "/v1/leases/{id}/reclaim", "Take the machine back as the lease's seller",
           Auth::kAccount, 200, Body::kNone, false, &ReclaimLease},
      });
}

}  // namespace ocx::api
