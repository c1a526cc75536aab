"""Audiences, their rule trees and members arrive with the audience builder."""
