"""The pages for people: create, reveal and receipt, served by the app itself (`web/pages`)."""
