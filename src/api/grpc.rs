//! The gRPC front end (`api.JobService`), over the same operations as HTTP.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    auth::User,
    proto::{
        CreateJobRequest, DeleteJobRequest, DisableJobRequest, EnableJobRequest, GetJobRequest, Job, ListJobsRequest,
        ListJobsResponse, job_service_server,
    },
    service::JobApi,
};

pub struct Grpc(pub Arc<JobApi>);

/// The caller, authenticated by the gate before the message was decoded.
fn caller<T>(req: &Request<T>) -> Result<User, Status> {
    req.extensions()
        .get::<User>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the request was not authenticated"))
}

type Empty = pbjson_types::Empty;

/// Wraps an operation's result as a gRPC response (`()` becomes `google.protobuf.Empty`).
fn respond<T, R>(result: Result<T, super::error::ApiError>, into: impl FnOnce(T) -> R) -> Result<Response<R>, Status> {
    result.map(|v| Response::new(into(v))).map_err(|e| e.to_grpc())
}

fn empty(_: ()) -> Empty {
    Empty {}
}

#[tonic::async_trait]
impl job_service_server::JobService for Grpc {
    async fn create_job(&self, req: Request<CreateJobRequest>) -> Result<Response<Job>, Status> {
        let who = caller(&req)?;
        let job = req
            .into_inner()
            .job
            .ok_or_else(|| Status::invalid_argument("job is required"))?;
        respond(self.0.create_job(&who, job).await, |v| v)
    }

    async fn get_job(&self, req: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        let who = caller(&req)?;
        respond(self.0.get_job(&who, &req.into_inner().id).await, |v| v)
    }

    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> Result<Response<ListJobsResponse>, Status> {
        let who = caller(&req)?;
        respond(self.0.list_jobs(&who, &req.into_inner()).await, |v| v)
    }

    async fn enable_job(&self, req: Request<EnableJobRequest>) -> Result<Response<Empty>, Status> {
        let who = caller(&req)?;
        respond(self.0.set_enabled(&who, &req.into_inner().id, true).await, empty)
    }

    async fn disable_job(&self, req: Request<DisableJobRequest>) -> Result<Response<Empty>, Status> {
        let who = caller(&req)?;
        respond(self.0.set_enabled(&who, &req.into_inner().id, false).await, empty)
    }

    async fn delete_job(&self, req: Request<DeleteJobRequest>) -> Result<Response<Empty>, Status> {
        let who = caller(&req)?;
        respond(self.0.delete_job(&who, &req.into_inner().id).await, empty)
    }
}

pub fn service(api: Arc<JobApi>) -> job_service_server::JobServiceServer<Grpc> {
    job_service_server::JobServiceServer::new(Grpc(api))
}
