//! Integration tests of the host, compiled as one binary.

mod bounds;
mod chaos;
mod cli;
mod console;
mod contract;
mod crm;
mod crm_bitrix24;
mod crm_harness;
mod crm_hubspot;
mod crm_pipedrive;
mod crm_zoho;
mod egress;
mod package;
mod pbx;
mod pipeline;
mod plugins;
mod reload;
mod sandbox;
mod scenarios;
mod server;
mod support;
