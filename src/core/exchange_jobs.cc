// The exchange state machine's tasks and jobs (RULEBOOK section 3, docs/formats/job.md),
// split from exchange.cc to keep each file readable: a task given to a lease, its result, and
// a job's orders, retries and end.
#include <algorithm>
#include <string>

#include "src/base/assert.h"
#include "src/core/exchange.h"
#include "src/core/exchange_internal.h"

namespace ocx::core {

using namespace internal;  // NOLINT: this file is the state machine the helpers serve.

// ---------------------------------------------------------------- tasks

void Exchange::Do(const AssignTask& c, Ctx& ctx) {
  const auto it = leases_.find(c.lease);
  if (it == leases_.end()) return Reject(ctx, Refusal::kUnknownLease, "No active lease has this id.");
  const Lease& lease = it->second;
  if (c.actor == 0 || c.actor != lease.buyer) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only the lease's buyer may give it a task.");
  }
  if (open_tasks_.contains(c.lease)) {
    return Reject(ctx, Refusal::kTaskAlreadyAssigned, "This lease already has its task.");
  }
  if (c.spec.empty()) return Reject(ctx, Refusal::kInvalidTask, "The task spec is empty.");
  if (c.spec.size() > config_.task_document_bytes_max) {
    return Reject(ctx, Refusal::kTaskTooLarge, "The task spec is longer than the exchange accepts.");
  }
  open_tasks_.emplace(c.lease, OpenTask{c.lease, lease.buyer, lease.machine, c.spec, now_, 0});
  ctx.out->events.push_back(TaskAssigned{c.lease, lease.buyer, lease.machine, c.spec});
}

void Exchange::Do(const FinishTask& c, Ctx& ctx) {
  const auto it = open_tasks_.find(c.lease);
  if (it == open_tasks_.end() || it->second.machine != c.machine || c.machine == 0) {
    return Reject(ctx, Refusal::kUnknownTask,
                  "This machine has no task waiting for a result on this lease.");
  }
  if (c.result.empty()) return Reject(ctx, Refusal::kInvalidTaskResult, "The task result is empty.");
  if (c.result.size() > config_.task_document_bytes_max) {
    return Reject(ctx, Refusal::kTaskTooLarge, "The task result is longer than the exchange accepts.");
  }
  const OpenTask& task = it->second;
  if (task.lease_ended != 0) {
    task_deadlines_.erase({task.lease_ended + config_.task_result_grace, task.lease});
  }
  ctx.out->events.push_back(TaskFinished{task.lease, task.buyer, task.machine, c.result});
  const LeaseId lease = task.lease;
  open_tasks_.erase(it);
  if (const auto job = job_leases_.find(lease); job != job_leases_.end()) {
    const auto [job_id, index] = job->second;
    job_leases_.erase(job);
    SetJobTask(jobs_.at(job_id), index, JobTaskState::kFinished, ctx);
    EndJobIfOver(job_id, ctx);
  }
}

// ---------------------------------------------------------------- jobs

JobId Exchange::FindClientJob(AccountId account, const std::string& client_job_id) const {
  const auto it = client_job_ids_.find({account, client_job_id});
  return it == client_job_ids_.end() ? 0 : it->second.id;
}

void Exchange::Do(const SubmitJob& c, Ctx& ctx) {
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr) return Reject(ctx, Refusal::kUnknownAccount, "No account has this id.");
  if (c.client_job_id.empty() || c.client_job_id.size() > kClientJobIdMax) {
    return Reject(ctx, Refusal::kInvalidClientJobId, "A client job id is 1 to 64 characters.");
  }
  if (const JobId used = FindClientJob(c.actor, c.client_job_id); used != 0) {
    ctx.out->result.job = used;  // The API answers an idempotent retry with this job.
    return Reject(ctx, Refusal::kDuplicateClientJobId, "This account already used this client job id.");
  }
  const int market_index = MarketIndex(c.market);
  if (market_index < 0) return Reject(ctx, Refusal::kUnknownMarket, "No market has this name.");
  const MarketConfig& market = config_.markets[static_cast<size_t>(market_index)];
  if (c.tasks < 1 || c.tasks > kJobTasksMax) {
    return Reject(ctx, Refusal::kInvalidTasks, "A job has 1 to 1,000 tasks.");
  }
  if (c.slots_per_task < 1 || c.slots_per_task > kCapacityMax) {
    return Reject(ctx, Refusal::kInvalidSlots, "slots_per_task is 1 to 1,000,000.");
  }
  if (c.max_price <= 0 || c.max_price % market.tick_micros != 0) {
    return Reject(ctx, Refusal::kInvalidPrice,
                  "max_price must be positive and a multiple of the market's tick.");
  }
  if (c.max_hours < 1 || c.max_hours > config_.max_hours_max) {
    return Reject(ctx, Refusal::kInvalidMaxHours, "max_hours must be from 1 to 744.");
  }
  if (c.task_spec.empty()) return Reject(ctx, Refusal::kInvalidTask, "The task spec is empty.");
  if (c.task_spec.size() > config_.task_document_bytes_max) {
    return Reject(ctx, Refusal::kTaskTooLarge, "The task spec is longer than the exchange accepts.");
  }
  if (const std::string error = CheckConstraints(c.constraints); !error.empty()) {
    return Reject(ctx, Refusal::kInvalidConstraints, error);
  }
  if (actor->open_orders + static_cast<size_t>(c.tasks) > config_.open_orders_per_account_max) {
    return Reject(ctx, Refusal::kTooManyOrders,
                  "The job's orders would pass the account's maximum of open orders.");
  }
  const Micros hold_each = HoldFor(c.max_price, c.slots_per_task, c.max_hours, market.taker_fee_bps);
  if (hold_each > kAmountMax || hold_each * c.tasks > kAmountMax) {
    return Reject(ctx, Refusal::kOrderTooLarge, "The job's value exceeds 1e9 credits.");
  }
  if (Balance({c.actor, BalanceKind::kAvailable}) < hold_each * c.tasks) {
    return Reject(ctx, Refusal::kInsufficientFunds,
                  "The available balance does not cover tasks * max_price * slots_per_task * "
                  "max_hours plus the taker fee.");
  }
  Job job;
  job.id = next_job_++;
  job.spec = c;
  job.submitted = now_;
  job.tasks.resize(static_cast<size_t>(c.tasks));
  Remember(true, c.actor, c.client_job_id, job.id);
  const JobId id = job.id;
  jobs_.emplace(id, std::move(job));
  ctx.out->events.push_back(JobSubmitted{id, c.actor, c, now_});
  for (int32_t i = 0; i < c.tasks && jobs_.contains(id); ++i) {
    Job& live = jobs_.at(id);
    if (live.tasks[i].state == JobTaskState::kWaiting && live.tasks[i].attempts == 0) {
      RetryJobTask(live, i, ctx);
    }
  }
  ctx.out->result = CommandResult{};
  ctx.out->result.job = id;
}

void Exchange::Do(const CancelJob& c, Ctx& ctx) {
  const auto it = jobs_.find(c.job);
  if (it == jobs_.end()) return Reject(ctx, Refusal::kUnknownJob, "No job that is still running has this id.");
  Job& job = it->second;
  const Account* actor = FindAccount(c.actor);
  if (actor == nullptr || (job.spec.actor != c.actor && actor->role != Role::kOperator)) {
    return Reject(ctx, Refusal::kNotAuthorized, "Only the job's owner or an operator may cancel it.");
  }
  for (int32_t i = 0; i < static_cast<int32_t>(job.tasks.size()); ++i) {
    JobTask& task = job.tasks[i];
    if (task.state == JobTaskState::kWaiting) {
      job_orders_.erase(task.order);
      SetJobTask(job, i, JobTaskState::kCancelled, ctx);
      if (const auto order = orders_.find(task.order); order != orders_.end()) {
        const size_t market = order->second.market;
        engine_events_.clear();
        books_[market]->Cancel(task.order, now_, &engine_events_);
        ProcessEngineEvents(market, ctx);
        FinishTouchedOrders(ctx);
      }
    } else if (task.state == JobTaskState::kRunning) {
      job_leases_.erase(task.lease);
      SetJobTask(job, i, JobTaskState::kCancelled, ctx);
      if (leases_.contains(task.lease)) EndLeaseNow(task.lease, LeaseEndReason::kReleased, ctx);
    }
  }
  ctx.out->events.push_back(JobEnded{job.id, job.spec.actor, JobState::kCancelled, now_});
  jobs_.erase(it);
  ctx.out->result.job = c.job;
}

bool Exchange::PlaceJobOrder(Job& job, int32_t index, Ctx& ctx) {
  JobTask& task = job.tasks[index];
  PlaceOrder order;
  order.actor = job.spec.actor;
  order.market = job.spec.market;
  order.client_order_id = std::string(kJobOrderPrefix) + std::to_string(job.id) + ":" +
                          std::to_string(index) + ":" + std::to_string(task.attempts + 1);
  order.side = Side::kBuy;
  order.type = engine::OrderType::kLimit;
  order.tif = engine::TimeInForce::kGtc;
  order.price = job.spec.max_price;
  order.quantity = job.spec.slots_per_task;
  order.lot = job.spec.slots_per_task;  // One fill, one machine, one lease.
  order.max_hours = job.spec.max_hours;
  order.constraints = job.spec.constraints;
  const OrderId id = next_order_;
  ++task.attempts;
  task.order = id;
  task.lease = 0;
  task.machine = 0;
  SetJobTask(job, index, JobTaskState::kWaiting, ctx);
  // Registered before the order goes in: it may trade at once, and StartLease looks it up.
  job_orders_[id] = {job.id, index};
  const CommandResult saved = ctx.out->result;
  PlaceOrderChecked(order, ctx);
  const bool placed = ctx.out->result.accepted;
  ctx.out->result = saved;
  if (!placed) job_orders_.erase(id);
  return placed;
}

void Exchange::RetryJobTask(Job& job, int32_t index, Ctx& ctx) {
  const JobId id = job.id;
  JobTask& task = job.tasks[index];
  if (task.lease != 0) job_leases_.erase(task.lease);
  if (task.attempts >= kJobTaskAttemptsMax || !PlaceJobOrder(job, index, ctx)) {
    SetJobTask(job, index, JobTaskState::kLost, ctx);
  }
  EndJobIfOver(id, ctx);
}

void Exchange::AssignJobTask(Job& job, int32_t index, const Lease& lease, Ctx& ctx) {
  JobTask& task = job.tasks[index];
  task.lease = lease.id;
  task.machine = lease.machine;
  job_leases_[lease.id] = {job.id, index};
  open_tasks_.emplace(lease.id, OpenTask{lease.id, lease.buyer, lease.machine, job.spec.task_spec,
                                         now_, 0, job.id, index});
  ctx.out->events.push_back(
      TaskAssigned{lease.id, lease.buyer, lease.machine, job.spec.task_spec, job.id, index});
  SetJobTask(job, index, JobTaskState::kRunning, ctx);
}

void Exchange::SetJobTask(Job& job, int32_t index, JobTaskState state, Ctx& ctx) {
  JobTask& task = job.tasks[index];
  task.state = state;
  ctx.out->events.push_back(
      JobTaskChanged{job.id, index, state, task.attempts, task.order, task.lease, task.machine});
}

void Exchange::EndJobIfOver(JobId id, Ctx& ctx) {
  const auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  for (const JobTask& task : it->second.tasks) {
    if (task.state == JobTaskState::kWaiting || task.state == JobTaskState::kRunning) return;
  }
  ctx.out->events.push_back(JobEnded{id, it->second.spec.actor, JobState::kDone, now_});
  jobs_.erase(it);
}

}  // namespace ocx::core
